"""One WayGPS instance against two on the same machine and store: reports/s and feed latency.

Run: .venv/bin/python benchmarks/bench_cluster.py [--devices 200] [--duration 15] [--uri mongodb://...]

One SecantusDB started for the run as a one-node replica set (so the feed
follows change streams), unless ``--uri`` names a replica set. Two scenarios,
each on a fresh database, with real ``twistd waygps`` processes:

* **one, local feed**: instance ``a`` with ``cluster.feed = "local"`` (the
  in-process bus, as on a standalone MongoDB): the reference;
* **one**: instance ``a`` takes every device; a WebSocket dashboard on ``a``;
* **two**: devices alternate between instances ``a`` and ``b`` (what a TCP
  balancer does); the dashboard is on ``b``, so half of what it shows crossed
  instances through the store.

A load generator (another process) opens ``--devices`` GV50 TCP connections;
each sends ``+RESP:GTFRI`` and waits for its ``+SACK`` before the next.
Counted in the window after ``--warmup``: SACKs per second, and for every
``gps_update`` the dashboard received, the time from the report's send to its
arrival on the dashboard (store + change stream + WebSocket). The machine's
load average is printed: the figures are for this (shared) machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import frame, imei_of, raise_fd_limit  # noqa: E402

TOKEN = "bench-secret"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"an instance exited early ({process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"port {port} never opened")


# --- the load generator (a separate process: --loadgen) -----------------------------------------


def loadgen(args: argparse.Namespace) -> int:
    raise_fd_limit()
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    targets = [int(p) for p in args.targets.split(",")]
    sent: dict[tuple[str, int], float] = {}
    state = {"measuring": False, "sacks": 0, "latencies": [], "updates": 0}

    class Dashboard(WebSocketClientProtocol):
        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            message = json.loads(payload)
            if message.get("type") != "gps_update":
                return
            now = time.monotonic()
            fix = datetime.fromisoformat(message["data"]["fecha_gps"].replace("Z", "+00:00"))
            key = (message["mobile_id"], int((fix - START).total_seconds()))
            at = sent.pop(key, None)
            if at is not None and state["measuring"]:
                state["updates"] += 1
                state["latencies"].append(now - at)

    class Device(Protocol):
        def __init__(self, index: int) -> None:
            self.imei = imei_of(index)
            self.n = 0

        def connectionMade(self) -> None:
            self.send()

        def send(self) -> None:
            self.n += 1
            sent[(self.imei, self.n)] = time.monotonic()
            self.transport.write(frame(self.imei, self.n, START))

        def dataReceived(self, data: bytes) -> None:
            for _ in range(data.count(b"+SACK:")):
                if state["measuring"]:
                    state["sacks"] += 1
                self.send()

    class Devices(ClientFactory):
        def __init__(self, index: int) -> None:
            self.index = index

        def buildProtocol(self, addr: Any) -> Device:
            return Device(self.index)

    dashboard = WebSocketClientFactory(f"ws://127.0.0.1:{args.ws}/ws/gps/?token={TOKEN}")
    dashboard.protocol = Dashboard
    connectWS(dashboard)

    def begin() -> None:
        state["measuring"] = True
        state["t0"] = time.monotonic()
        reactor.callLater(args.duration, end)

    def end() -> None:
        state["measuring"] = False
        elapsed = time.monotonic() - state["t0"]
        latencies = sorted(state["latencies"])

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

        print(json.dumps({"reports_per_s": state["sacks"] / elapsed, "feed_updates": state["updates"],
                          "feed_p50_ms": pct(0.5), "feed_p99_ms": pct(0.99)}))
        reactor.stop()

    for index in range(args.devices):
        reactor.connectTCP("127.0.0.1", targets[index % len(targets)], Devices(index))
    reactor.callLater(args.warmup, begin)
    reactor.run()
    return 0


# --- the driver -------------------------------------------------------------------------------------


class Store:
    def __init__(self, uri: str | None) -> None:
        self.process: subprocess.Popen | None = None
        self.dir: str | None = None
        if uri:
            self.uri = uri
            return
        from waygps.store.embedded import find_command

        command = find_command("secantusd-py")
        if command is None:
            raise SystemExit("secantusd-py not found: give --uri or install the embedded extra")
        self.dir = tempfile.mkdtemp(prefix="waygps-bench-cluster-")
        port = free_port()
        self.process = subprocess.Popen(
            [command, "--host", "127.0.0.1", "--port", str(port), "--storage-path", f"{self.dir}/data",
             "--log-level", "WARNING"], stdout=open(f"{self.dir}/log", "wb"), stderr=subprocess.STDOUT)
        self.uri = f"mongodb://127.0.0.1:{port}/"
        import pymongo

        deadline = time.monotonic() + 60
        while True:
            try:
                pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300).admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_instance(workdir: Path, uri: str, database: str, name: str,
                   feed: str = "auto") -> tuple[subprocess.Popen, int, int]:
    gv50, web = free_port(), free_port()
    config = workdir / f"{name}.toml"
    config.write_text(f"""
[mongodb]
uri = "{uri}"
database = "{database}"
[commands]
instance_id = "{name}"
[cluster]
feed = "{feed}"
[[listener]]
driver = "gv50"
host = "127.0.0.1"
port = {gv50}
[websocket]
host = "127.0.0.1"
port = {web}
[[websocket.tokens]]
token = "{TOKEN}"
devices = "*"
""")
    log = open(workdir / f"{name}.log", "wb")
    twistd = str(Path(sys.executable).parent / "twistd")
    process = subprocess.Popen([twistd, "--nodaemon", "--pidfile=", "waygps", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    wait_port(web, process)
    return process, gv50, web


def scenario(store: Store, names: list[str], args: argparse.Namespace, feed: str = "auto") -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="waygps-bench-instances-"))
    database = f"bench_cluster_{len(names)}_{os.getpid()}"
    started = [start_instance(workdir, store.uri, database, name, feed) for name in names]
    try:
        targets = ",".join(str(gv50) for _, gv50, _ in started)
        command = [sys.executable, __file__, "--loadgen", "--targets", targets, "--ws", str(started[-1][2]),
                   "--devices", str(args.devices), "--duration", str(args.duration), "--warmup", str(args.warmup)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + args.warmup + 120)
        if out.returncode != 0:
            raise SystemExit(f"load generator failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for process, _, _ in started:
            process.terminate()
            process.wait(60)
        import pymongo

        pymongo.MongoClient(store.uri).drop_database(database)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--uri", help="a MongoDB replica set (default: a SecantusDB started for the run)")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    parser.add_argument("--ws", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen(args)
    print(f"load average before: {os.getloadavg()}  (2 cores, shared machine)")
    store = Store(args.uri)
    try:
        results = {"one, local feed": scenario(store, ["a"], args, feed="local"),
                   "one instance": scenario(store, ["a"], args),
                   "two instances": scenario(store, ["a", "b"], args)}
    finally:
        store.close()
    print(f"{args.devices} devices, {args.duration:g} s window after {args.warmup:g} s warm-up, "
          f"store {'given' if args.uri else 'SecantusDB one-node replica set'}")
    print(f"{'':<18}{'reports/s':>12}{'feed updates':>14}{'feed p50 ms':>13}{'feed p99 ms':>13}")
    for name, r in results.items():
        print(f"{name:<18}{r['reports_per_s']:>12.0f}{r['feed_updates']:>14}{r['feed_p50_ms']:>13.0f}"
              f"{r['feed_p99_ms']:>13.0f}")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
