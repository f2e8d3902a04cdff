"""Report lines per second through the generic driver's TCP codec (line framing + parsing), one core.

Run: .venv/bin/python benchmarks/bench_generic_framing.py [--lines N] [--chunk BYTES] [--rounds R] [--framing-only]

The input is a TCP stream of distinct ``key=value`` report lines of one device,
fed to one ``GenericStreamCodec`` in reads of ``--chunk`` bytes. A line counts
when its ``Position`` is in a ``Store`` action. Best of ``--rounds`` runs, in this
process's CPU time; the load average is printed because the figure is only
comparable between runs on an equally loaded machine. ``--framing-only`` replaces
the line parser with a stub that returns nothing: what is left is the codec's
line framing (``waygps.framing.TextFramer``) and its HTTP detection.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import waygps.drivers.generic.codec as generic_codec
from waygps.actions import Store
from waygps.drivers.generic.codec import GenericStreamCodec, Settings


def lines(count: int, now: datetime) -> bytes:
    start = int(now.timestamp()) - 30 * count - 3600  # 30 s apart, the last an hour before "now"
    return "".join(
        f"id=862894020180553,timestamp={start + 30 * n},lat={-23.5 + n * 1e-5:.6f},lon={-46.6 - n * 1e-5:.6f},"
        f"speed={n % 120},bearing={n % 360},altitude=760,batt={n % 101}\r\n"
        for n in range(count)
    ).encode()


def run(stream: bytes, chunk: int, now: datetime, framing_only: bool = False) -> tuple[int, float]:
    codec = GenericStreamCodec(Settings(), capture=True)
    decoded = 0
    started = time.process_time()
    for offset in range(0, len(stream), chunk):
        for action in codec.receive(stream[offset:offset + chunk], now):
            if type(action) is Store:
                decoded += len(action.events)
            elif framing_only:
                decoded += 1
    return decoded, time.process_time() - started


def _line_stub(line: bytes, now: datetime, settings: Settings, device: str | None = None) -> list:
    return [None]  # one placeholder per line: counts the lines the framing delivered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=16384, help="bytes per read")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--framing-only", action="store_true", help="stub the parser: measure line framing")
    args = parser.parse_args(argv)
    if args.framing_only:
        generic_codec.line_actions = _line_stub
    now = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
    stream = lines(args.lines, now)
    best = 0.0
    for _ in range(args.rounds):
        decoded, seconds = run(stream, args.chunk, now, args.framing_only)
        if decoded != args.lines:
            print(f"decoded {decoded} of {args.lines} lines", file=sys.stderr)
            return 1
        best = max(best, decoded / seconds)
    what = "generic line framing" if args.framing_only else "generic decode"
    print(f"{what}: {best:,.0f} report lines/s on one core ({args.lines} lines, reads of {args.chunk} "
          f"bytes, best of {args.rounds}; Python {sys.version.split()[0]}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
