"""Generic driver: JSON report lines decoded per second on one core (codec alone, no network, no store).

Run: .venv/bin/python benchmarks/bench_generic_decode.py [--lines N] [--chunk BYTES] [--rounds R]

The input is what the simulator's generic devices send (``waygps.simulate``):
one JSON object per line with id, time, position, speed, course, altitude,
ignition and a few extra attributes, from ``--devices`` devices driving for a
while, interleaved. It is fed to one ``GenericStreamCodec`` per device in reads
of ``--chunk`` bytes; a line counts when its ``Position`` is in a ``Store``
action. CPU time of this process, best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timezone

from benchlib import machine  # noqa: I001  (puts src/ on the path)
from waygps.actions import Store
from waygps.drivers.generic.codec import GenericStreamCodec, Settings
from waygps.simulate.device import DeviceSettings, imei_of
from waygps.simulate.generic import GenericDevice
from waygps.simulate.stats import Stats
from waygps.simulate.track import Track

T0 = 1_790_000_000.0


def streams(lines: int, devices: int) -> list[bytes]:
    """One stream per device: its report lines (the acknowledgements are fed back, so each is new)."""
    out = []
    per = lines // devices
    for index in range(devices):
        rng = random.Random(index)
        device = GenericDevice(imei_of(index), Track(rng, T0, -17.78, -63.18), DeviceSettings(), Stats(), rng)
        device.connected(T0)
        chunks = []
        for n in range(1, per + 1):
            [line] = device.report(T0 + 10 * n)
            chunks.append(line)
            device.receive(b"OK 1\n", T0 + 10 * n)
        out.append(b"".join(chunks))
    return out


def run(data: list[bytes], chunk: int, now: datetime) -> tuple[int, float]:
    decoded = 0
    settings = Settings()
    started = time.process_time()
    for stream in data:
        codec = GenericStreamCodec(settings)
        for offset in range(0, len(stream), chunk):
            for action in codec.receive(stream[offset:offset + chunk], now):
                if type(action) is Store:
                    decoded += len(action.events)
    return decoded, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=16384, help="bytes per read")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    data = streams(args.lines, args.devices)
    total = sum(s.count(b"\n") for s in data)
    now = datetime.fromtimestamp(T0 + 10 * (args.lines // args.devices + 1), timezone.utc)
    best = None
    for _ in range(args.rounds):
        decoded, seconds = run(data, args.chunk, now)
        if decoded != total:
            print(f"error: decoded {decoded} of {total} lines", file=sys.stderr)
            return 1
        rate = decoded / seconds
        best = rate if best is None else max(best, rate)
    size = sum(len(s) for s in data) / total
    print(f"generic decode: {best:,.0f} JSON report lines/s on one core ({total} lines of {args.devices} devices, "
          f"{size:.0f} bytes each, reads of {args.chunk} bytes, best of {args.rounds})")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
