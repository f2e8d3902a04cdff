"""Teltonika AVL records decoded per second on one core, beside two peer parsers on the same packets.

Run: .venv/bin/python benchmarks/bench_teltonika_decode.py [--packets N] [--rounds R] [--cpu C]

Input: ``--packets`` distinct Codec 8 Extended TCP packets (default 2000), each of
10 records with 20 IO elements (8 one-byte, 6 two-byte, 4 four-byte, 2 eight-byte),
values and times varying like one device's history. Figures (best of
``--rounds`` rounds, each round measuring every contender in turn):

* ``waygps decode``  - frame, CRC-16 check and record decoding (``avl.decode_data``):
  records with their IO IDs and raw values, the same output the peers produce;
* ``waygps codec``   - the whole sans-IO path the server runs: ``TeltonikaStreamCodec.receive``
  of the packets -> ``Store`` actions of ``Position`` events with named, scaled attributes;
* ``waygps codec, Python CRC`` - the same with the pure-Python CRC fallback (no ``anycrc``);
* ``codecs-protocol`` (PyPI) - ``Codec8E(hex).decode_data()`` (asyncio; it checks no CRC);
* ``complete-teltonika-parser`` (npm, Node) - ``new ProtocolParser(hex)`` (checks the CRC).

Peers take hex strings; they are given them ready-made (the conversion is not timed),
and they run pinned to the same CPU as this process. They live OUTSIDE the project:

    python3 -m venv /tmp/peers/venv && /tmp/peers/venv/bin/pip install codecs-protocol==1.0.2
    mkdir -p /tmp/peers/node && cd /tmp/peers/node && npm init -y \
        && npm install complete-teltonika-parser@0.3.4

Other places: ``WAYGPS_PEER_PYTHON`` (the peers venv's python) and ``WAYGPS_PEER_NODE_DIR`` (the
directory holding ``node_modules``). A missing peer is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from waygps.actions import Store
from waygps.drivers.teltonika import crc as crc_module
from waygps.drivers.teltonika import codec as codec_module
from waygps.drivers.teltonika.avl import CODEC_8E, decode_data, encode_data, make_record
from waygps.drivers.teltonika.codec import TeltonikaStreamCodec
from waygps.drivers.teltonika.framing import frame, imei_frame

RECORDS = 10
IMEI = "356307042441013"
PEER_PYTHON = os.environ.get("WAYGPS_PEER_PYTHON", "/tmp/peers/venv/bin/python")
PEER_NODE_DIR = os.environ.get("WAYGPS_PEER_NODE_DIR", "/tmp/peers/node")

INSTALL_PY = "python3 -m venv /tmp/peers/venv && /tmp/peers/venv/bin/pip install codecs-protocol==1.0.2"
INSTALL_NODE = (
    "mkdir -p /tmp/peers/node && cd /tmp/peers/node && npm init -y && "
    "npm install complete-teltonika-parser@0.3.4"
)


def packets(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    stamp = 1_717_387_864_011
    out = []
    for _ in range(count):
        records = []
        for _ in range(RECORDS):
            stamp += rng.randint(1000, 30_000)
            io = {
                1: {
                    239: rng.randint(0, 1),
                    240: rng.randint(0, 1),
                    21: rng.randint(0, 5),
                    200: 0,
                    69: 1,
                    1: rng.randint(0, 1),
                    179: 0,
                    113: rng.randint(0, 100),
                },
                2: {
                    66: rng.randint(11_000, 14_500),
                    67: rng.randint(3_500, 4_200),
                    24: rng.randint(0, 120),
                    181: rng.randint(5, 30),
                    182: rng.randint(5, 30),
                    17: rng.randint(0, 65535),
                },
                4: {
                    16: rng.randint(0, 10**8),
                    199: rng.randint(0, 10**5),
                    241: 24602,
                    636: rng.randint(0, 10**6),
                },
                8: {78: 0, 11: 8937012345678901234},
            }
            records.append(
                make_record(
                    stamp,
                    priority=0,
                    longitude=-631234567 + rng.randint(-9999, 9999),
                    latitude=-177654321 + rng.randint(-9999, 9999),
                    altitude=rng.randint(300, 450),
                    angle=rng.randint(0, 359),
                    satellites=rng.randint(4, 20),
                    speed=rng.randint(0, 120),
                    event_id=0,
                    io=io,
                )
            )
        out.append(frame(encode_data(CODEC_8E, records)))
    return out


def pin(cpu: int | None) -> int | None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    os.sched_setaffinity(0, {cpu})
    return cpu


def rate(run, records: int) -> float:
    """Records per second of one timed call of ``run``."""
    started = time.perf_counter()
    run()
    return records / (time.perf_counter() - started)


def decode_run(data: list[bytes]):
    crc16 = crc_module.crc16

    def run() -> None:
        decoded = 0
        for packet in data:
            length = int.from_bytes(packet[4:8], "big")
            body = packet[8 : 8 + length]
            if crc16(body) != int.from_bytes(packet[8 + length :], "big"):
                raise AssertionError("CRC")
            decoded += len(decode_data(body)[1])
        assert decoded == RECORDS * len(data)

    return run


def codec_run(data: list[bytes], python_crc: bool = False):
    now = datetime.now(timezone.utc)

    def run() -> None:
        fast = codec_module.crc16
        if python_crc:
            codec_module.crc16 = crc_module.crc16_python
        try:
            codec = TeltonikaStreamCodec()
            codec.receive(imei_frame(IMEI), now)
            decoded = 0
            for packet in data:
                for action in codec.receive(packet, now):
                    if type(action) is Store:
                        decoded += len(action.events)
        finally:
            codec_module.crc16 = fast
        assert decoded == RECORDS * len(data), decoded

    return run


PY_PEER = r"""
import asyncio, json, sys, time
from codecs_protocol import Codec8E
packets = open(sys.argv[1]).read().split()
rounds = int(sys.argv[2])
async def run():
    n = 0
    for h in packets:
        response, ack = await Codec8E(h).decode_data()
        n += len(response["records"])
    return n
loop = asyncio.new_event_loop()
first = loop.run_until_complete(Codec8E(packets[0]).decode_data())[0]["records"][0]["io_data"]
elements = sum(len(first[k]) for k in ("one_byte_io", "two_byte_io", "four_byte_io", "eight_byte_io"))
loop.run_until_complete(run())
times = []
for _ in range(rounds):
    t = time.perf_counter(); n = loop.run_until_complete(run()); times.append(time.perf_counter() - t)
print(json.dumps({"records": n, "seconds": min(times), "elements": elements}))
"""

NODE_PEER = r"""
const { ProtocolParser } = require('complete-teltonika-parser');
const fs = require('fs');
const packets = fs.readFileSync(process.argv[2], 'utf8').split(/\s+/).filter(Boolean);
const rounds = parseInt(process.argv[3]);
function run() {
  let n = 0;
  for (const h of packets) n += new ProtocolParser(h).Content.AVL_Datas.length;
  return n;
}
const elements = Object.keys(new ProtocolParser(packets[0]).Content.AVL_Datas[0].IOelement.Elements).length;
run();
let best = Infinity, n = 0;
for (let i = 0; i < rounds; i++) {
  const t = process.hrtime.bigint();
  n = run();
  best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
}
console.log(JSON.stringify({records: n, seconds: best, elements}));
"""


def peer(
    name: str, command: list[str], cpu: int | None, total: int, env: dict[str, str] | None = None
) -> float:
    """Run one peer process (its own warm-up, then one timed pass): records per second."""
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=preexec, env=env, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    if out["records"] != total or out["elements"] != 20:
        raise ValueError(f"{name} decoded {out['records']} records with {out['elements']} elements each")
    return out["records"] / out["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed one)"
    )
    args = parser.parse_args(argv)
    cpu = args.cpu
    if cpu is None and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
    cpu = pin(cpu)
    data = packets(args.packets)
    total = RECORDS * len(data)
    print(
        f"Teltonika decode benchmark: {len(data)} Codec 8E packets x {RECORDS} records x 20 IO elements "
        f"({len(data[0])} bytes each), CRC checked, best of {args.rounds} interleaved rounds, "
        f"{'pinned to CPU ' + str(cpu) if cpu is not None else 'not pinned'}; "
        f"Python {sys.version.split()[0]}, "
        f"CRC {crc_module.IMPLEMENTATION}"
    )
    # Every contender is measured once per round, rounds interleaved, and its best round kept:
    # a machine busy with something else for a while then costs every contender alike.
    contenders: dict[str, Any] = {
        "waygps decode": lambda: rate(decode_run(data), total),
        "waygps codec": lambda: rate(codec_run(data), total),
    }
    if crc_module.IMPLEMENTATION != "python":
        contenders["waygps codec, Python CRC"] = lambda: rate(codec_run(data, python_crc=True), total)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="waygps-bench-") as tmp:
        hex_file = Path(tmp, "packets.hex")
        hex_file.write_text("\n".join(p.hex() for p in data))
        if Path(PEER_PYTHON).exists():
            py_script = Path(tmp, "peer.py")
            py_script.write_text(PY_PEER)
            contenders["codecs-protocol"] = lambda: peer(
                "codecs-protocol", [PEER_PYTHON, str(py_script), str(hex_file), "1"], cpu, total
            )
        else:
            print(f"peer codecs-protocol: MISSING ({PEER_PYTHON} not found); install with: {INSTALL_PY}")
        node = shutil.which("node")
        modules = Path(PEER_NODE_DIR, "node_modules", "complete-teltonika-parser")
        if node and modules.exists():
            js_script = Path(tmp, "peer.js")
            js_script.write_text(NODE_PEER)
            env = dict(os.environ, NODE_PATH=str(Path(PEER_NODE_DIR, "node_modules")))
            contenders["complete-teltonika-parser"] = lambda: peer(
                "complete-teltonika-parser", [node, str(js_script), str(hex_file), "1"], cpu, total, env
            )
        else:
            why = "node not found" if not node else f"{modules} not found"
            print(f"peer complete-teltonika-parser: MISSING ({why}); install with: {INSTALL_NODE}")
        for name in ("waygps decode", "waygps codec"):
            contenders[name]()  # warm-up (struct and naming caches)
        failed: set[str] = set()
        for _ in range(args.rounds):
            for name, measure in contenders.items():
                if name in failed:
                    continue
                try:
                    figures[name] = max(figures.get(name, 0.0), measure())
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                    install = INSTALL_PY if name == "codecs-protocol" else INSTALL_NODE
                    print(f"peer {name}: FAILED ({e}); install with: {install}")
                    failed.add(name)
                    figures.pop(name, None)

    labels = {
        "waygps decode": "waygps decode (CRC + records)",
        "waygps codec": "waygps codec (-> Position events)",
        "waygps codec, Python CRC": "waygps codec, Python CRC fallback",
        "codecs-protocol": "codecs-protocol 1.0.2 (PyPI, no CRC)",
        "complete-teltonika-parser": "complete-teltonika-parser 0.3.4 (Node)",
    }
    for key, value in figures.items():
        print(f"  {labels[key]:<42} {value:>12,.0f} records/s")
    for ours in ("waygps decode", "waygps codec"):
        parts = []
        if "codecs-protocol" in figures:
            ratio = figures[ours] / figures["codecs-protocol"]
            parts.append(f"{ratio:.2f}x codecs-protocol (target >= 3: {'met' if ratio >= 3 else 'NOT met'})")
        if "complete-teltonika-parser" in figures:
            ratio = figures[ours] / figures["complete-teltonika-parser"]
            parts.append(f"{ratio:.2f}x the Node parser (target >= 1: {'met' if ratio >= 1 else 'NOT met'})")
        if parts:
            print(f"  {ours}: " + "; ".join(parts))
    print(f"  load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine may be shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
