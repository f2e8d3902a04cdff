"""Decoded GTFRI frames per second on one core (the GV50 codec alone, no network, no store).

Run: .venv/bin/python benchmarks/bench_gv50_decode.py [--frames N] [--chunk BYTES] [--rounds R]

The input is a TCP stream of distinct single-position GTFRI frames (different
count, times and coordinates, like one device's history), fed to one
``Gv50StreamCodec`` in reads of ``--chunk`` bytes. A frame counts as decoded
when its ``Position`` event is in a ``Store`` action. Prints the best of
``--rounds`` runs. Time is this process's CPU time, so other load on the
machine does not count against the figure (it still disturbs caches: run it
on an idle machine for a figure to quote).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from waygps.actions import Store
from waygps.drivers.gv50.codec import Gv50StreamCodec


def frames(count: int) -> bytes:
    start = datetime(2016, 3, 9, 11, 35, 48)
    out = []
    for n in range(count):
        fix = start + timedelta(seconds=30 * n)
        send = fix - timedelta(hours=4) + timedelta(seconds=6)
        out.append(
            f"+RESP:GTFRI,060228,862894020180553,,12400,10,1,1,{n % 120}.{n % 10},{n % 360},329.7,"
            f"{-62.899703 + n * 1e-5:.6f},{-17.720434 - n * 1e-5:.6f},{fix:%Y%m%d%H%M%S},0736,0003,6AAE,3381,00,"
            f"{913.3 + n * 0.1:.1f},,,,{n % 101},220101,,,,{send:%Y%m%d%H%M%S},{n % 65536:04X}$"
        )
    return "".join(out).encode()


def run(stream: bytes, chunk: int, now: datetime) -> tuple[int, float]:
    codec = Gv50StreamCodec()
    decoded = 0
    started = time.process_time()
    for offset in range(0, len(stream), chunk):
        for action in codec.receive(stream[offset:offset + chunk], now):
            if type(action) is Store:
                decoded += len(action.events)
    return decoded, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=16384, help="bytes per read")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    stream = frames(args.frames)
    now = datetime.now(timezone.utc)
    best = None
    for _ in range(args.rounds):
        decoded, seconds = run(stream, args.chunk, now)
        if decoded != args.frames:
            print(f"error: decoded {decoded} of {args.frames} frames", file=sys.stderr)
            return 1
        rate = decoded / seconds
        best = rate if best is None else max(best, rate)
    print(f"gv50 decode: {best:,.0f} GTFRI frames/s on one core "
          f"({args.frames} frames, {len(stream) / args.frames:.0f} bytes each, reads of {args.chunk} bytes, "
          f"best of {args.rounds}; Python {sys.version.split()[0]}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}: the machine may be shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
