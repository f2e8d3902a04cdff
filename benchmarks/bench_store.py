"""Stored-and-acknowledged GV50 reports per second: WayGPS against the store's limit and a naive server.

Run: .venv/bin/python benchmarks/bench_store.py [--devices 1000] [--duration 20] [--uri mongodb://...]

Three figures on one MongoDB (an embedded SecantusDB started for the run
unless ``--uri`` is given), each on a fresh database with the contract's
indexes, all with the write concern WayGPS uses (``w: majority, j: true``):

(a) **store limit**: ``insert_many`` of ready-made ``DadosVeiculo`` documents,
    ``--batch`` at a time, straight from one txmongo client;
(b) **naive design**: what a simple server does per report, one ``insert_one``
    and one ``update_one`` (upsert of ``Veiculo``) before it answers; one
    worker per device, ``--devices`` concurrently;
(c) **WayGPS**: the real service (``waygps.service.build_service``) with a GV50
    TCP listener; a load generator in another process opens ``--devices`` TCP
    connections, each sending ``+RESP:GTFRI`` reports and waiting for its
    ``+SACK`` before the next, as devices do. Counted: SACKs received in the
    measurement window (after ``--warmup`` seconds); checked afterwards:
    every acknowledged report is in ``DadosVeiculo``.

Prints the figures and the ratios WayGPS/(a) (target >= 0.8) and WayGPS/(b)
(target >= 10). The three share the machine with the store, so the figures
are for this machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def luhn_complete(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return body + str((10 - total % 10) % 10)


def imei_of(device: int) -> str:
    return luhn_complete(f"86{device:012d}")


def frame(imei: str, n: int, start: datetime) -> bytes:
    """The n-th GTFRI of a device: distinct count, send time and fix time (so a distinct ``_id``)."""
    fix = start + timedelta(seconds=n)
    send = fix + timedelta(seconds=2)
    return (f"+RESP:GTFRI,060228,{imei},,12400,10,1,1,{n % 120}.{n % 10},{n % 360},329.7,"
            f"{-62.899703 + n * 1e-5:.6f},{-17.720434 - n * 1e-5:.6f},{fix:%Y%m%d%H%M%S},0736,0003,6AAE,3381,00,"
            f"{913.3 + n * 0.1:.1f},,,,{n % 101},220101,,,,{send:%Y%m%d%H%M%S},{n % 65536:04X}$").encode()


# --- the load generator (a separate process: `--loadgen HOST:PORT`) -------------------------------


def loadgen(args: argparse.Namespace) -> int:
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    raise_fd_limit()
    host, port = args.loadgen.rsplit(":", 1)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    state = {"connected": 0, "acked": 0, "window": False, "lost": 0, "wrong": 0, "max_rtt": 0.0}
    latencies: list[float] = []

    class Device(Protocol):
        def __init__(self, index: int) -> None:
            self.imei = imei_of(index)
            self.n = 0
            self.buffer = b""
            self.sent_at = 0.0

        def connectionMade(self) -> None:
            state["connected"] += 1
            self.send()

        def send(self) -> None:
            self.expect = b"+SACK:%04X$" % (self.n % 65536)
            self.sent_at = time.perf_counter()
            self.transport.write(frame(self.imei, self.n, start))

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data
            while b"$" in self.buffer:
                reply, _, self.buffer = self.buffer.partition(b"$")
                if reply + b"$" != self.expect:
                    state["wrong"] += 1
                    continue
                if state["window"]:
                    state["acked"] += 1
                    latencies.append(time.perf_counter() - self.sent_at)
                self.n += 1
                self.send()

        def connectionLost(self, reason: Any = None) -> None:
            state["lost"] += 1

    class Factory(ClientFactory):
        def __init__(self) -> None:
            self.index = 0

        def buildProtocol(self, addr: Any) -> Device:
            self.index += 1
            return Device(args.first_device + self.index)

    factory = Factory()

    def open_some(left: int) -> None:
        for _ in range(min(100, left)):
            reactor.connectTCP(host, int(port), factory, timeout=30)
        if left > 100:
            reactor.callLater(0.05, open_some, left - 100)

    result: dict[str, Any] = {}

    def begin() -> None:
        state["window"] = True
        result["started"] = time.perf_counter()
        reactor.callLater(args.duration, end)

    def end() -> None:
        state["window"] = False
        result["seconds"] = time.perf_counter() - result["started"]
        result.update(state)
        latencies.sort()
        if latencies:
            result["p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 1)
            result["p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 1)
        reactor.stop()

    def wait_connected(deadline: float) -> None:
        if state["connected"] >= args.devices or time.monotonic() > deadline:
            reactor.callLater(args.warmup, begin)
        else:
            reactor.callLater(0.1, wait_connected, deadline)

    open_some(args.devices)
    wait_connected(time.monotonic() + 60)
    reactor.run()
    print(json.dumps(result))
    return 0


# --- the store and the documents ----------------------------------------------------------------


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
        self.dir = tempfile.mkdtemp(prefix="waygps-bench-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.process = subprocess.Popen(
            [command, "--host", "127.0.0.1", "--port", str(port), "--storage-path", f"{self.dir}/data",
             "--standalone", "--log-level", "WARNING"],
            stdout=open(f"{self.dir}/log", "wb"), stderr=subprocess.STDOUT)
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


def documents(count: int, devices: int) -> list[dict]:
    """``DadosVeiculo`` documents of GV50 reports, decoded by the real codec."""
    from waygps.actions import Store as StoreAction
    from waygps.documents import position_document
    from waygps.drivers.gv50.codec import Gv50StreamCodec
    from waygps.quality import assess

    now = datetime.now(timezone.utc)
    start = now.replace(microsecond=0) - timedelta(hours=2)
    codecs = [Gv50StreamCodec() for _ in range(devices)]
    out = []
    for n in range(count):
        device = n % devices
        for action in codecs[device].receive(frame(imei_of(device), n // devices, start), now):
            if isinstance(action, StoreAction):
                for event in action.events:
                    if type(event).__name__ == "Position":
                        out.append(position_document(assess(event, now)[0]))
    return out


def config_for(uri: str, database: str, args: argparse.Namespace, listeners: list | None = None) -> Any:
    from waygps.config import build
    from waygps.drivers import find_drivers

    raw: dict[str, Any] = {
        "mongodb": {"uri": uri, "database": database},
        "persistence": {"batch_size": args.batch, "batch_interval_ms": args.interval_ms,
                        "queue_limit": max(20000, args.devices * 4)},
        "websocket": {"host": "127.0.0.1", "port": 0},
        "listener": listeners or [],
    }
    return build(raw, find_drivers())


async def prepared(uri: str, database: str, args: argparse.Namespace) -> Any:
    from waygps.indexes import ensure_indexes
    from waygps.store.connection import MongoStore

    cfg = config_for(uri, database, args)
    store = MongoStore(cfg.mongodb, uri, pool_size=8)
    store.connect()
    await ensure_indexes(store, cfg)
    return store, cfg


async def store_limit(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    from waygps.persistence import write_concern

    docs = documents(args.store_docs, args.devices)
    store, cfg = await prepared(uri, "bench_limit", args)
    collection = store.collection("positions").with_options(write_concern=write_concern(cfg.mongodb))
    started = time.perf_counter()
    for offset in range(0, len(docs), args.batch):
        await collection.insert_many(docs[offset:offset + args.batch], ordered=False)
    seconds = time.perf_counter() - started
    await store.close()
    return {"reports": len(docs), "seconds": seconds, "rate": len(docs) / seconds}


async def naive(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import defer, reactor

    from waygps.persistence import write_concern

    docs = documents(args.devices * 30, args.devices)
    store, cfg = await prepared(uri, "bench_naive", args)
    positions = store.collection("positions").with_options(write_concern=write_concern(cfg.mongodb))
    vehicles = store.collection("vehicles").with_options(write_concern=write_concern(cfg.mongodb))
    state = {"window": False, "done": 0, "stop": False}

    async def device(index: int) -> None:
        mine = docs[index::args.devices]
        n = 0
        while not state["stop"]:
            doc = dict(mine[n % len(mine)])
            doc["_id"] = f"{doc['_id']}-{n // len(mine)}"
            await positions.insert_one(doc)
            await vehicles.update_one(
                {"IMEI": doc["IMEI"]},
                {"$set": {"latitude": doc["latitude"], "longitude": doc["longitude"], "speed": doc["speed"],
                          "course": doc["course"], "dataDevice": doc["dataDevice"], "online": True,
                          "protocol": "gv50", "ignicao": doc["ignicao"]},
                 "$max": {"lastSeen": doc["dataServidor"]}},
                upsert=True)
            if state["window"]:
                state["done"] += 1
            n += 1

    workers = [defer.ensureDeferred(device(i)) for i in range(args.devices)]
    await deferLater(reactor, args.warmup)
    state["window"] = True
    started = time.perf_counter()
    await deferLater(reactor, args.naive_duration)
    state["window"] = False
    seconds = time.perf_counter() - started
    done = state["done"]
    state["stop"] = True
    await defer.DeferredList(workers, consumeErrors=True)
    await store.close()
    return {"reports": done, "seconds": seconds, "rate": done / seconds}


def deferLater(reactor: Any, seconds: float) -> Any:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


async def waygps(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import reactor
    from twisted.internet.utils import getProcessOutputAndValue

    try:
        from waygps.drivers import find_drivers
        from waygps.service import build_service
    except ImportError as e:
        return {"pending": f"waygps.service.build_service not available ({e})"}
    if "gv50" not in find_drivers():
        return {"pending": "the gv50 driver is not installed"}
    cfg = config_for(uri, "bench_waygps", args,
                     [{"driver": "gv50", "transport": "tcp", "host": "127.0.0.1", "port": 0,
                       "max_connections": args.devices + 100}])
    from prometheus_client import REGISTRY

    service = build_service(cfg, reactor=reactor)
    batches_before = REGISTRY.get_sample_value("waygps_store_batch_seconds_count") or 0.0
    batch_time_before = REGISTRY.get_sample_value("waygps_store_batch_seconds_sum") or 0.0
    service.startService()
    await service.started
    vehicle_stats = dict(service.persistence.vehicle_stats)
    port = service.listeners[0].bound_port
    try:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [__file__, "--loadgen", f"127.0.0.1:{port}", "--devices", str(args.devices), "--duration",
             str(args.duration), "--warmup", str(args.warmup)],
            env=dict(os.environ), reactor=reactor)
        if code != 0:
            return {"pending": f"load generator failed: {err.decode()[-500:]}"}
        result = json.loads(out.decode().strip().splitlines()[-1])
        await service.persistence.flush()
        stored = await service.store.collection("positions").count_documents({})
        result["stored_total"] = stored
        result["vehicle"] = {k: v - vehicle_stats[k] for k, v in service.persistence.vehicle_stats.items()}
        result["batches"] = (REGISTRY.get_sample_value("waygps_store_batch_seconds_count") or 0.0) - batches_before
        result["batch_seconds"] = (REGISTRY.get_sample_value("waygps_store_batch_seconds_sum") or 0.0) - batch_time_before
    finally:
        await service.stopService()
    result["rate"] = result["acked"] / result["seconds"]
    return result


def report(limit: dict, simple: dict, ours: dict, args: argparse.Namespace) -> None:
    print(f"\nmachine: {os.cpu_count()} CPUs; store: {'given URI' if args.uri else 'embedded SecantusDB'}; "
          f"write concern w=majority j=true; batch {args.batch} / {args.interval_ms:g} ms; "
          f"{args.devices} devices")
    print(f"(a) store limit, insert_many x{args.batch}:      {limit['rate']:9,.0f} reports/s "
          f"({limit['reports']:,} in {limit['seconds']:.1f} s)")
    print(f"(b) naive insert_one + update_one:      {simple['rate']:9,.0f} reports/s "
          f"({simple['reports']:,} in {simple['seconds']:.1f} s, {args.devices} concurrent)")
    if "pending" in ours:
        print(f"(c) WayGPS over TCP (GV50, SACK):       pending: {ours['pending']}")
        return
    print(f"(c) WayGPS over TCP (GV50, SACK):       {ours['rate']:9,.0f} reports/s "
          f"({ours['acked']:,} acknowledged in {ours['seconds']:.1f} s; {ours['connected']} connections, "
          f"p50 {ours.get('p50_ms')} ms, p99 {ours.get('p99_ms')} ms, {ours['wrong']} unexpected replies, "
          f"{ours['lost']} lost connections)")
    if ours.get("batches"):
        print(f"    report batches: {ours['batches']:,.0f}, {ours['stored_total'] / ours['batches']:.0f} reports "
              f"each on average, {ours['batch_seconds'] / ours['batches'] * 1000:.1f} ms each on average")
    vehicle = ours.get("vehicle")
    if vehicle and vehicle["writes"]:
        print(f"    Veiculo writes: {vehicle['writes']:,}, {vehicle['updates'] / vehicle['writes']:.0f} upserts each "
              f"on average ({vehicle['updates']:,} in all), {vehicle['seconds']:.1f} s in flight in all")
    print(f"    ratio WayGPS / store limit:         {ours['rate'] / limit['rate']:9.2f}   (target >= 0.8)")
    print(f"    ratio WayGPS / naive:               {ours['rate'] / simple['rate']:9.2f}   (target >= 10)")
    print(f"    stored in DadosVeiculo after the run: {ours['stored_total']:,} "
          f"(>= acknowledged: {ours['stored_total'] >= ours['acked']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0, help="WayGPS measurement window, seconds")
    parser.add_argument("--naive-duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--store-docs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--uri", help="an existing MongoDB (default: start an embedded SecantusDB)")
    parser.add_argument("--only", choices=("limit", "naive", "waygps"), action="append")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--first-device", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen(args)
    raise_fd_limit()
    from twisted.internet import defer, task

    store = Store(args.uri)
    results: dict[str, Any] = {}

    async def run(reactor: Any) -> None:
        wanted = args.only or ["limit", "naive", "waygps"]
        none = {"rate": float("nan"), "reports": 0, "seconds": 0.0}
        results["limit"] = await store_limit(store.uri, args) if "limit" in wanted else none
        print(f"(a) done: {results['limit']['rate']:,.0f}/s", flush=True)
        results["naive"] = await naive(store.uri, args) if "naive" in wanted else none
        print(f"(b) done: {results['naive']['rate']:,.0f}/s", flush=True)
        results["waygps"] = await waygps(store.uri, args) if "waygps" in wanted else {"pending": "not run"}

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code not in (0, None):
            store.close()
            raise
    store.close()
    report(results["limit"], results["naive"], results["waygps"], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
