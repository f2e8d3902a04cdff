"""Report lines per second through the generic driver's TCP codec (line framing + parsing), one core.

Run: .venv/bin/python benchmarks/bench_generic_decode.py [--lines N] [--chunk BYTES] [--rounds R]

The input is a TCP stream of distinct ``key=value`` report lines of one device,
fed to one ``GenericStreamCodec`` in reads of ``--chunk`` bytes. A line counts
when its ``Position`` is in a ``Store`` action. Best of ``--rounds`` runs, in this
process's CPU time; the load average is printed because the figure is only
comparable between runs on an equally loaded machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from waygps.actions import Store
from waygps.drivers.generic.codec import GenericStreamCodec, Settings


def lines(count: int) -> bytes:
    start = 1_767_000_000  # 2025-12-29: every report before the benchmark's "now"
    return "".join(
        f"id=862894020180553,timestamp={start + 30 * n},lat={-23.5 + n * 1e-5:.6f},lon={-46.6 - n * 1e-5:.6f},"
        f"speed={n % 120},bearing={n % 360},altitude=760,batt={n % 101}\r\n"
        for n in range(count)
    ).encode()


def run(stream: bytes, chunk: int, now: datetime) -> tuple[int, float]:
    codec = GenericStreamCodec(Settings(), capture=True)
    decoded = 0
    started = time.process_time()
    for offset in range(0, len(stream), chunk):
        for action in codec.receive(stream[offset:offset + chunk], now):
            if type(action) is Store:
                decoded += len(action.events)
    return decoded, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=16384, help="bytes per read")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    stream = lines(args.lines)
    now = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
    best = 0.0
    for _ in range(args.rounds):
        decoded, seconds = run(stream, args.chunk, now)
        if decoded != args.lines:
            print(f"decoded {decoded} of {args.lines} lines", file=sys.stderr)
            return 1
        best = max(best, decoded / seconds)
    print(f"generic decode: {best:,.0f} report lines/s on one core ({args.lines} lines, reads of {args.chunk} "
          f"bytes, best of {args.rounds}; Python {sys.version.split()[0]}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
