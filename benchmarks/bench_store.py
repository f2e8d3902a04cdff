"""Stored-and-acknowledged GV50 reports per second: WayGPS against the store's limit and a naive server.

Run: .venv/bin/python benchmarks/bench_store.py [--devices 1000] [--duration 20] [--uri mongodb://...]
     [--reactor waygps|default]

Three figures on one MongoDB (an embedded SecantusDB started for the run
unless ``--uri`` is given), each on a fresh database with the contract's
indexes, all with the write concern WayGPS uses (``w: majority, j: true``):

(a) **store limit**: ``insert_many`` of ready-made ``DadosVeiculo`` documents,
    ``--batch`` at a time, straight from one txmongo client;
(b) **naive design**: what a simple server does per report, one ``insert_one``
    and one ``update_one`` (upsert of ``Veiculo``) before it answers; one
    worker per device, ``--devices`` concurrently;
(c) **WayGPS**: the real service (``waygps.service.build_service``) with a GV50
    TCP listener, in this process; the simulator (``waygps.simulate``) in
    another process opens ``--devices`` TCP connections, each sending a
    ``+RESP:GTFRI`` and waiting for its ``+SACK`` before the next (``interval
    = 0``: closed loop). Counted: SACKs received in the measurement window
    (after ``--warmup`` seconds); checked afterwards: every acknowledged
    report is in ``DadosVeiculo``;

(a') when (a) and (c) both run: (a) again after (c), on another fresh
    database. The host's speed drifts over minutes, so (c) is compared with
    the mean of (a) and (a').

The indexes are the ones WayGPS creates with ``[mongodb] history_geo_index``
off (the default) unless ``--history-geo-index`` is given, the same for the
three; on the embedded store started for the run, as on WayGPS's own embedded
store, ``dataServidor`` has no TTL (``[retention] expiry``: the store's TTL
pass would read the whole history under its lock every minute). Also printed: the CPU time per report of the store process in (a) and
(c), and of the WayGPS process in (c) (``benchmarks/bench_cpu_per_report.py``
runs only that part). Prints the ratios WayGPS/(a) (target >= 0.8; with
(a'), against the mean of the two and against each) and WayGPS/(b). The three share the machine with the store, so the figures are for
this machine only. The process runs on ``waygps.reactor`` (``twistd --reactor
waygps``, as ``make run`` runs the server) unless ``--reactor default``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from benchlib import Store, add_reactor_option, cpu_split, install_reactor, machine, raise_fd_limit  # noqa: E402  (puts src/ on the path)
from waygps.simulate.device import imei_of as simulated_imei  # noqa: E402


def imei_of(device: int) -> str:
    return simulated_imei(device, "86")


def frame(imei: str, n: int, start: datetime) -> bytes:
    """The n-th GTFRI of a device: distinct count, send time and fix time (so a distinct ``_id``)."""
    fix = start + timedelta(seconds=n)
    send = fix + timedelta(seconds=2)
    return (f"+RESP:GTFRI,060228,{imei},,12400,10,1,1,{n % 120}.{n % 10},{n % 360},329.7,"
            f"{-62.899703 + n * 1e-5:.6f},{-17.720434 - n * 1e-5:.6f},{fix:%Y%m%d%H%M%S},0736,0003,6AAE,3381,00,"
            f"{913.3 + n * 0.1:.1f},,,,{n % 101},220101,,,,{send:%Y%m%d%H%M%S},{n % 65536:04X}$").encode()


# --- the load generator (a separate process: `--loadgen HOST:PORT`), on the simulator ----------------


def loadgen(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from waygps.simulate.device import DeviceSettings
    from waygps.simulate.fleet import Fleet, FleetOptions
    from waygps.simulate.stats import LatencyHistogram

    from waygps.config import RuntimeConfig
    from waygps.runtime import tune_collector

    raise_fd_limit()
    tune_collector(RuntimeConfig())  # as `waygps simulate` does
    host, port = args.loadgen.rsplit(":", 1)
    options = FleetOptions(driver="gv50", host=host, port=int(port), devices=args.devices, interval=0.0,
                           ramp_up=min(10.0, args.devices / 200), settings=DeviceSettings(ack_timeout=60.0,
                                                                                         heartbeat=0.0),
                           first_device=args.first_device, imei_prefix="86", reconnect_delay=5.0, tick=1.0)
    fleet = Fleet(reactor, options)
    stats = fleet.stats
    result: dict = {}

    def begin() -> None:
        print("window begins", flush=True)  # the parent samples CPU times on these two lines
        result["started"] = time.perf_counter()
        result["cpu0"] = sum(os.times()[:2])
        result["acked0"] = stats.acked
        stats.latency = LatencyHistogram()
        reactor.callLater(args.duration, end)

    def end() -> None:
        print("window ends", flush=True)
        result["seconds"] = time.perf_counter() - result["started"]
        result["acked"] = stats.acked - result.pop("acked0")
        result["loadgen_cpu_us"] = (sum(os.times()[:2]) - result.pop("cpu0")) / max(1, result["acked"]) * 1e6
        summary = stats.summary(reactor.seconds())
        result.update(connected=stats.connected, resent=stats.resent, unexpected=stats.unexpected,
                      lost=stats.disconnects, p50_ms=summary["ack_latency_p50_ms"],
                      p99_ms=summary["ack_latency_p99_ms"])
        fleet.stop().addBoth(lambda _: reactor.stop())

    def wait_connected(deadline: float) -> None:
        if stats.connected >= args.devices or time.monotonic() > deadline:
            reactor.callLater(args.warmup, begin)
        else:
            reactor.callLater(0.1, wait_connected, deadline)

    reactor.callWhenRunning(fleet.start)
    reactor.callWhenRunning(wait_connected, time.monotonic() + 60)
    reactor.run()
    print(json.dumps(result))
    return 0


# --- the store and the documents ----------------------------------------------------------------


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
        "mongodb": {"uri": uri, "database": database, "history_geo_index": args.history_geo_index},
        # An embedded SecantusDB started for the run is the store WayGPS runs without a URI: there
        # WayGPS expires old reports itself and dataServidor has a plain index (waygps.store.expiry).
        "retention": {"expiry": "auto" if getattr(args, "uri", None) else "waygps"},
        "persistence": {"batch_size": args.batch, "batch_interval_ms": args.interval_ms,
                        "queue_limit": max(20000, args.devices * 4)},
        "websocket": {"host": "127.0.0.1", "port": 0},
        "listener": listeners or [],
    }
    if getattr(args, "python_gc", False):
        raw["runtime"] = {"gc_threshold": 0, "gc_freeze": False}
    return build(raw, find_drivers())


async def prepared(uri: str, database: str, args: argparse.Namespace) -> Any:
    from waygps.indexes import ensure_indexes
    from waygps.store.connection import MongoStore

    cfg = config_for(uri, database, args)
    store = MongoStore(cfg.mongodb, uri, pool_size=8)
    store.connect()
    await ensure_indexes(store, cfg)
    await drop_vehicle_geo(store, cfg, args)
    return store, cfg


async def drop_vehicle_geo(store: Any, cfg: Any, args: argparse.Namespace) -> None:
    """``--without-vehicle-geo-index``: measure what the ``Veiculo`` 2dsphere costs."""
    if args.without_vehicle_geo_index:
        await store.db.command("dropIndexes", cfg.mongodb.collections.vehicles, index="location_2dsphere")


async def store_limit(server: Store, args: argparse.Namespace, database: str = "bench_limit") -> dict[str, Any]:
    from waygps.persistence import write_concern

    docs = documents(args.store_docs, args.devices)
    store, cfg = await prepared(server.uri, database, args)
    collection = store.collection("positions").with_options(write_concern=write_concern(cfg.mongodb))
    store_cpu = server.cpu()
    started = time.perf_counter()
    for offset in range(0, len(docs), args.batch):
        await collection.insert_many(docs[offset:offset + args.batch], ordered=False)
    seconds = time.perf_counter() - started
    result = {"reports": len(docs), "seconds": seconds, "rate": len(docs) / seconds}
    if store_cpu is not None:
        result["store_cpu_us"] = (server.cpu() - store_cpu) / len(docs) * 1e6
    await store.close()
    return result


async def naive(server: Store, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import defer, reactor

    from waygps.persistence import write_concern

    docs = documents(args.devices * 30, args.devices)
    store, cfg = await prepared(server.uri, "bench_naive", args)
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


class _Loadgen:
    """The load generator's process: its output, with CPU times sampled on its window lines."""

    def __init__(self, server: Store) -> None:
        from twisted.internet.defer import Deferred
        from twisted.internet.protocol import ProcessProtocol

        self.server = server
        self.out = b""
        self.err = b""
        self.samples: dict[str, tuple[float, float | None]] = {}
        self.done: Deferred = Deferred()
        outer = self

        class Protocol(ProcessProtocol):
            def outReceived(self, data: bytes) -> None:
                outer.out += data
                for mark in (b"window begins", b"window ends"):
                    name = mark.decode().split()[1]
                    if mark in outer.out and name not in outer.samples:
                        outer.samples[name] = (cpu_split(), outer.server.cpu())

            def errReceived(self, data: bytes) -> None:
                outer.err = (outer.err + data)[-5000:]

            def processEnded(self, reason: Any) -> None:
                outer.done.callback(reason.value.exitCode)

        self.protocol = Protocol()


async def waygps(server: Store, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import reactor

    try:
        from waygps.drivers import find_drivers
        from waygps.service import build_service
    except ImportError as e:
        return {"pending": f"waygps.service.build_service not available ({e})"}
    if "gv50" not in find_drivers():
        return {"pending": "the gv50 driver is not installed"}
    cfg = config_for(server.uri, "bench_waygps", args,
                     [{"driver": "gv50", "transport": "tcp", "host": "127.0.0.1", "port": 0,
                       "max_connections": args.devices + 100}])
    from prometheus_client import REGISTRY

    service = build_service(cfg, reactor=reactor, tune_runtime=True)  # as twistd waygps runs it
    batches_before = REGISTRY.get_sample_value("waygps_store_batch_seconds_count") or 0.0
    batch_time_before = REGISTRY.get_sample_value("waygps_store_batch_seconds_sum") or 0.0
    service.startService()
    await service.started
    await drop_vehicle_geo(service.store, cfg, args)
    vehicle_stats = dict(service.persistence.vehicle_stats)
    port = service.listeners[0].bound_port
    try:
        gen = _Loadgen(server)
        command = [sys.executable, __file__, "--loadgen", f"127.0.0.1:{port}", "--devices", str(args.devices),
                   "--duration", str(args.duration), "--warmup", str(args.warmup)]
        reactor.spawnProcess(gen.protocol, sys.executable, command, env=dict(os.environ))
        code = await gen.done
        if code != 0 or "ends" not in gen.samples:
            return {"pending": f"load generator failed: {gen.err.decode()[-500:]}"}
        result = json.loads(gen.out.decode().strip().splitlines()[-1])
        (own0, store0), (own1, store1) = gen.samples["begins"], gen.samples["ends"]
        acked = max(1, result["acked"])
        result["waygps_cpu_us"] = (sum(own1) - sum(own0)) / acked * 1e6
        result["waygps_user_us"] = (own1[0] - own0[0]) / acked * 1e6
        result["waygps_system_us"] = (own1[1] - own0[1]) / acked * 1e6
        if store0 is not None and store1 is not None:
            result["store_cpu_us"] = (store1 - store0) / max(1, result["acked"]) * 1e6
        for _ in range(10):  # a loaded machine may need more than one store_timeout to drain
            try:
                await service.persistence.flush()
                break
            except Exception as e:
                print(f"flush after the run: {e}; waiting again", flush=True)
        stored = await service.store.collection("positions").count_documents({})
        result["stored_total"] = stored
        result["vehicle"] = {k: v - vehicle_stats[k] for k, v in service.persistence.vehicle_stats.items()}
        result["batches"] = (REGISTRY.get_sample_value("waygps_store_batch_seconds_count") or 0.0) - batches_before
        result["batch_seconds"] = (REGISTRY.get_sample_value("waygps_store_batch_seconds_sum") or 0.0) - batch_time_before
    finally:
        await service.stopService()
    result["rate"] = result["acked"] / result["seconds"]
    return result


def report(limit: dict, simple: dict, ours: dict, args: argparse.Namespace, after: dict | None = None) -> None:
    print(f"\n{machine()}")
    ttl = " (TTL)" if args.uri else " (plain: WayGPS expires reports on the embedded store)"
    indexes = f"IMEI+dataDevice, dataServidor{ttl}" + (", location 2dsphere" if args.history_geo_index else "")
    vehicle = "IMEI (unique)" + ("" if args.without_vehicle_geo_index else ", location 2dsphere")
    print(f"store: {'given URI' if args.uri else 'embedded SecantusDB'}; DadosVeiculo indexes: {indexes}; "
          f"Veiculo indexes: {vehicle}; "
          f"write concern w=majority j=true; batch {args.batch} / {args.interval_ms:g} ms; "
          f"{args.devices} devices")
    cpu = f", store CPU {limit['store_cpu_us']:,.0f} us/report" if "store_cpu_us" in limit else ""
    print(f"(a) store limit, insert_many x{args.batch}:      {limit['rate']:9,.0f} reports/s "
          f"({limit['reports']:,} in {limit['seconds']:.1f} s{cpu})")
    if after is not None:
        cpu = f", store CPU {after['store_cpu_us']:,.0f} us/report" if "store_cpu_us" in after else ""
        print(f"(a') the same, after (c):                {after['rate']:9,.0f} reports/s "
              f"({after['reports']:,} in {after['seconds']:.1f} s{cpu})")
    print(f"(b) naive insert_one + update_one:      {simple['rate']:9,.0f} reports/s "
          f"({simple['reports']:,} in {simple['seconds']:.1f} s, {args.devices} concurrent)")
    if "pending" in ours:
        print(f"(c) WayGPS over TCP (GV50, SACK):       pending: {ours['pending']}")
        return
    print(f"(c) WayGPS over TCP (GV50, SACK):       {ours['rate']:9,.0f} reports/s "
          f"({ours['acked']:,} acknowledged in {ours['seconds']:.1f} s; {ours['connected']} connections, "
          f"p50 {ours.get('p50_ms')} ms, p99 {ours.get('p99_ms')} ms, {ours['unexpected']} unexpected replies, "
          f"{ours['resent']} re-sent, {ours['lost']} lost connections)")
    print(f"    CPU per stored-and-acknowledged report: WayGPS process {ours['waygps_cpu_us']:,.0f} us "
          f"({ours['waygps_user_us']:,.0f} user + {ours['waygps_system_us']:,.0f} system)"
          + (f", store {ours['store_cpu_us']:,.0f} us" if "store_cpu_us" in ours else "")
          + f"; the load generator (simulated devices) {ours['loadgen_cpu_us']:,.0f} us")
    if ours.get("batches"):
        print(f"    report batches: {ours['batches']:,.0f}, {ours['stored_total'] / ours['batches']:.0f} reports "
              f"each on average, {ours['batch_seconds'] / ours['batches'] * 1000:.1f} ms each on average")
    vehicle = ours.get("vehicle")
    if vehicle and vehicle["writes"]:
        print(f"    Veiculo writes: {vehicle['writes']:,}, {vehicle['updates'] / vehicle['writes']:.0f} upserts each "
              f"on average ({vehicle['updates']:,} in all), {vehicle['seconds']:.1f} s in flight in all")
    if after is not None:
        mean = (limit["rate"] + after["rate"]) / 2
        print(f"    ratio WayGPS / store limit:         {ours['rate'] / mean:9.2f}   (target >= 0.8; against the mean "
              f"of (a) and (a'), {mean:,.0f} reports/s; against (a) alone {ours['rate'] / limit['rate']:.2f}, "
              f"against (a') alone {ours['rate'] / after['rate']:.2f})")
    else:
        print(f"    ratio WayGPS / store limit:         {ours['rate'] / limit['rate']:9.2f}   (target >= 0.8)")
    print(f"    ratio WayGPS / naive:               {ours['rate'] / simple['rate']:9.2f}")
    print(f"    stored in DadosVeiculo after the run: {ours['stored_total']:,} "
          f"(>= acknowledged: {ours['stored_total'] >= ours['acked']})")


def build_parser(description: str = __doc__.splitlines()[0]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0, help="WayGPS measurement window, seconds")
    parser.add_argument("--naive-duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--store-docs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--uri", help="an existing MongoDB (default: start an embedded SecantusDB)")
    parser.add_argument("--only", choices=("limit", "naive", "waygps"), action="append")
    parser.add_argument("--history-geo-index", action="store_true",
                        help="add the 2dsphere index on DadosVeiculo.location (the option WayGPS has off by default)")
    parser.add_argument("--without-vehicle-geo-index", action="store_true",
                        help="drop the 2dsphere index on Veiculo.location after WayGPS created it (to measure it)")
    parser.add_argument("--python-gc", action="store_true",
                        help="keep Python's own garbage collector settings (to measure what [runtime] saves)")
    add_reactor_option(parser)
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--first-device", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reactor_name = install_reactor(args.reactor)
    if args.loadgen:
        return loadgen(args)
    raise_fd_limit()
    from twisted.internet import defer, task

    print(machine(), flush=True)
    print(f"reactor: {reactor_name}", flush=True)

    store = Store(args.uri)
    results: dict[str, Any] = {}

    async def run(reactor: Any) -> None:
        wanted = args.only or ["limit", "naive", "waygps"]
        none = {"rate": float("nan"), "reports": 0, "seconds": 0.0}
        results["limit"] = await store_limit(store, args) if "limit" in wanted else none
        print(f"(a) done: {results['limit']['rate']:,.0f}/s", flush=True)
        results["naive"] = await naive(store, args) if "naive" in wanted else none
        print(f"(b) done: {results['naive']['rate']:,.0f}/s", flush=True)
        results["waygps"] = await waygps(store, args) if "waygps" in wanted else {"pending": "not run"}
        if "limit" in wanted and "waygps" in wanted:
            # The host's speed drifts over minutes: (a) again after (c), and (c) against their mean.
            results["limit_after"] = await store_limit(store, args, "bench_limit_after")
            print(f"(a') done: {results['limit_after']['rate']:,.0f}/s", flush=True)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code not in (0, None):
            store.close()
            raise
    store.close()
    report(results["limit"], results["naive"], results["waygps"], args, results.get("limit_after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
