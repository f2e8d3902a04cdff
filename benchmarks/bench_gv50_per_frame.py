"""CPU per GTFRI frame when every TCP read holds exactly one frame, as the server sees it.

Run: .venv/bin/python benchmarks/bench_gv50_per_frame.py [--devices N] [--frames-per-device K]
     [--rounds R] [--general]

``bench_gv50_decode.py`` feeds one codec 16 KB reads of many frames (the bulk path).
A real server mostly gets one ~170-byte read per report from each of many
connections, so this script holds ``--devices`` ``Gv50StreamCodec`` objects, each
identified by a first frame (its IMEI set, as after the first report of a
connection), and feeds them one frame per ``receive`` call, round-robin (device 0,
1, ..., N-1, then each one's next frame). Every frame must come back as a
``Store`` with its ``+SACK``. Prints the best of ``--rounds`` runs, in
microseconds of this process's CPU time per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone

from benchlib import machine  # noqa: I001  (puts src/ on the path)
from waygps.actions import Store
import waygps.drivers.gv50.codec as codec_module
from waygps.drivers.gv50.codec import Gv50StreamCodec
from waygps.simulate.device import imei_of
from waygps.simulate.gv50 import CELL, VERSION


def frame(device: int, n: int) -> bytes:
    """Device ``device``'s ``n``-th report, in the layout of ``waygps.simulate.gv50`` (its fields and widths)."""
    fix = datetime(2026, 5, 20, 11, 35, 48) + timedelta(seconds=30 * n + device % 30)
    send = fix + timedelta(seconds=2)
    count = (device * 7 + n) % 65536
    moving = (device + n) % 3 != 0
    status = "220100" if moving else "210100"  # MM II OO, as the simulator writes it
    return (
        f"+RESP:GTFRI,{VERSION},{imei_of(device)},,{12000 + (device * 13 + n) % 800},10,1,{1 + (device + n) % 3},"
        f"{(n + device) % 120}.{n % 10},{(device + n) % 360},{300 + device % 50}.7,"
        f"{-62.899703 + device * 1e-4 + n * 1e-5:.6f},{-17.720434 - device * 1e-4:.6f},{fix:%Y%m%d%H%M%S},{CELL},"
        f"{913.3 + n * 0.1:.1f},{device % 1000:05d}:{n % 60:02d}:{device % 60:02d},,,{60 + device % 41},{status},,,,"
        f"{send:%Y%m%d%H%M%S},{count:04X}$"
    ).encode()


def run(devices: int, per_device: int, now: datetime, general: bool) -> tuple[int, float]:
    codecs = []
    for device in range(devices):
        codec = Gv50StreamCodec()
        codec.use_fast_path = not general
        actions = codec.receive(frame(device, per_device + 1), now)  # identifies it (general path)
        assert codec.imei == imei_of(device), actions
        codecs.append(codec)
    reads = [[frame(device, n) for device in range(devices)] for n in range(per_device)]
    stored = 0
    started = time.process_time()
    for batch in reads:
        for codec, data in zip(codecs, batch):
            for action in codec.receive(data, now):
                if type(action) is Store and action.ack:
                    stored += len(action.events)
    return stored, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--frames-per-device", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--general", action="store_true", help="without the GTFRI shortcut")
    args = parser.parse_args(argv)
    now = datetime.now(timezone.utc)
    expected = args.devices * args.frames_per_device
    best = None
    for _ in range(args.rounds):
        stored, seconds = run(args.devices, args.frames_per_device, now, args.general)
        if stored != expected:
            print(f"error: stored {stored} of {expected} frames", file=sys.stderr)
            return 1
        per_frame = seconds / stored * 1e6
        best = per_frame if best is None else min(best, per_frame)
    size = len(frame(0, 0))
    path = " (general path)" if args.general else ""
    print(f"gv50 one frame per read: {best:.2f} us CPU per frame{path} ({args.devices} codecs round-robin, "
          f"{args.frames_per_device} frames each, {size} bytes per read, best of {args.rounds}; "
          f"codec from {codec_module.__file__})")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
