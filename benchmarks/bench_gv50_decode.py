"""Decoded GTFRI frames per second on one core (the GV50 codec alone, no network, no store).

Run: .venv/bin/python benchmarks/bench_gv50_decode.py [--frames N] [--chunk BYTES] [--rounds R]
     [--general] [--family]

``--general`` turns the GTFRI shortcut off (the general path alone); ``--family``
feeds GTCAN reports instead (mask, CAN fields, a block found by its shape), the
slowest of the @Track family layouts.

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
import sys
import time
from datetime import datetime, timedelta, timezone

from benchlib import machine  # noqa: I001  (puts src/ on the path)
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


def family(count: int) -> bytes:
    start = datetime(2024, 3, 1, 10, 15, 30)
    out = []
    for n in range(count):
        fix = start + timedelta(seconds=30 * n)
        out.append(
            f"+RESP:GTCAN,270703,862894020180553,gv300w,00,1,C00001FF,WDB9066331S123456,2,H{1234567 + n},"
            f"5123.50,{1800 + n % 200},{n % 120},88,L/H2.5,P64.40,1,{n % 120}.{n % 10},{n % 360},512.3,"
            f"{13.404954 + n * 1e-5:.6f},{52.520008 + n * 1e-5:.6f},{fix:%Y%m%d%H%M%S},0262,0002,1A2B,00C3D4E5,00,"
            f"{fix:%Y%m%d%H%M%S},{n % 65536:04X}$"
        )
    return "".join(out).encode()


def run(stream: bytes, chunk: int, now: datetime, general: bool = False) -> tuple[int, float]:
    codec = Gv50StreamCodec()
    codec.use_fast_path = not general
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
    parser.add_argument("--general", action="store_true", help="without the GTFRI shortcut")
    parser.add_argument("--family", action="store_true", help="GTCAN frames (block found by shape)")
    args = parser.parse_args(argv)
    stream = family(args.frames) if args.family else frames(args.frames)
    kind = "GTCAN" if args.family else "GTFRI"
    now = datetime.now(timezone.utc)
    best = None
    for _ in range(args.rounds):
        decoded, seconds = run(stream, args.chunk, now, args.general)
        if decoded != args.frames:
            print(f"error: decoded {decoded} of {args.frames} frames", file=sys.stderr)
            return 1
        rate = decoded / seconds
        best = rate if best is None else max(best, rate)
    path = " (general path)" if args.general else ""
    print(f"gv50 decode: {best:,.0f} {kind} frames/s on one core{path} "
          f"({args.frames} frames, {len(stream) / args.frames:.0f} bytes each, reads of {args.chunk} bytes, "
          f"best of {args.rounds}; Python {sys.version.split()[0]})")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
