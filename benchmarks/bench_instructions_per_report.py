"""WayGPS's own code per report, in one process, without sockets or a store: CPU time, or instructions.

Run: .venv/bin/python benchmarks/bench_instructions_per_report.py [--rounds 60]
     .venv/bin/python benchmarks/bench_instructions_per_report.py --instructions   (needs valgrind)

The real service objects (``WayGPSService``: the GV50 listener's adapter and
codec, sessions, persistence with its quality checks and vehicle fold, the
command service's speed guard, daily statistics, the WebSocket feed with no
client) on a ``MemoryReactorClock`` whose time is fixed, with a store that
answers every write at once, and 1,000 GV50 devices on ``StringTransport``:
each round every device sends one GTFRI, then the clock moves 50 ms (a batch
is stored and the devices acknowledged). The collector is tuned as ``twistd
waygps`` tunes it. What is left out is what ``bench_cpu_per_report.py``
measures on top: the event loop and sockets, txmongo and BSON, the store.

Default: CPU time per report over ``--rounds`` rounds after two warm-up rounds.
``--instructions``: the same run under ``valgrind --tool=cachegrind`` with 3
and with 8 rounds; the difference over the 5,000 reports in between is the
instruction count per report, which does not move with the host's speed (the
machine is shared): the figure to compare two versions of the code with.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import bench_store  # noqa: E402  (puts src/ on the path through benchlib)
from benchlib import machine

DEVICES = 1000
T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)  # a fixed clock: the same work every run


class _Collection:
    """Answers every call at once, as a store with no latency would, except the ``Veiculo`` writes:
    5 s each, so that they coalesce as under load (``bench_store.py``: one write of several hundred
    upserts every few seconds) instead of one per device and round."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def with_options(self, **_: Any) -> "_Collection":
        return self

    def insert_many(self, documents: Any, ordered: bool = True) -> Any:
        from twisted.internet.defer import succeed

        return succeed(None)

    def bulk_write(self, operations: Any, ordered: bool = True) -> Any:
        from twisted.internet.task import deferLater

        return deferLater(self.reactor, 5.0, lambda: None)

    def __getattr__(self, name: str) -> Any:  # find, distinct, update_one, create_index...
        from twisted.internet.defer import succeed

        def answer(*_: Any, **__: Any) -> Any:
            return succeed([] if name in ("find", "distinct") else None)

        return answer


class _Store:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def collection(self, name: str) -> _Collection:
        return _Collection(self.reactor)


def run(rounds: int) -> tuple[float, int]:
    """(CPU seconds of the measured rounds, reports in them)."""
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from waygps.drivers import find_drivers
    from waygps.runtime import freeze_startup, tune_collector
    from waygps.service import WayGPSService
    from waygps.web.websocket import GpsFeedFactory

    args = argparse.Namespace(history_geo_index=False, batch=500, interval_ms=20.0, devices=DEVICES)
    config = bench_store.config_for("mongodb://127.0.0.1:1", "bench", args,
                                    [{"driver": "gv50", "transport": "tcp", "host": "127.0.0.1", "port": 0,
                                      "max_connections": DEVICES + 100}])
    reactor = MemoryReactorClock()
    reactor.advance(T0.timestamp())
    service = WayGPSService(config, find_drivers(), reactor)
    store = _Store(reactor)
    service.store = service.persistence.store = service.commands.store = store
    service.persistence.startService()
    service.commands.startService()
    if service.stats is not None:
        service.stats.store = store
        service.stats.start()
    GpsFeedFactory(config.websocket, store, service.bus, reactor=reactor)  # subscribes itself
    listener = service.listeners[0]
    factory = listener.driver.tcp_factory(listener.context)
    devices = []
    for _ in range(DEVICES):
        protocol, transport = factory.buildProtocol(None), StringTransport()
        protocol.makeConnection(transport)
        devices.append((protocol, transport))
    start = T0 - timedelta(hours=1)
    frames = [[bench_store.frame(bench_store.imei_of(d), n, start) for n in range(rounds + 2)]
              for d in range(DEVICES)]

    def rounds_of(first: int, last: int) -> None:
        for n in range(first, last):
            for d, (protocol, _transport) in enumerate(devices):
                protocol.dataReceived(frames[d][n])
            reactor.advance(0.05)
            for _, transport in devices:
                transport.clear()

    rounds_of(0, 2)  # identification, first batches
    tune_collector(config.runtime)  # as the running server does once started
    freeze_startup(config.runtime)
    cpu = time.process_time()
    rounds_of(2, rounds + 2)
    cpu = time.process_time() - cpu
    if service.persistence.pending:
        raise SystemExit(f"{service.persistence.pending} reports still pending: the harness is broken")
    return cpu, rounds * DEVICES


def instructions() -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (apt-get install valgrind): no instruction count")
        return 1

    def count(rounds: int) -> int:
        out = subprocess.run([valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                              sys.executable, os.path.abspath(__file__), "--rounds", str(rounds), "--quiet"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if found is None:
            raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))

    low, high = count(3), count(8)
    reports = 5 * DEVICES
    print(machine())
    print(f"WayGPS's own code, in process: {(high - low) / reports:,.0f} instructions per report "
          f"(cachegrind: 8 rounds minus 3 rounds of {DEVICES:,} GV50 reports)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instructions:
        return instructions()
    cpu, reports = run(args.rounds)
    if not args.quiet:
        print(machine())
        print(f"WayGPS's own code, in process: {cpu / reports * 1e6:.1f} us CPU per report "
              f"({reports:,} reports, {DEVICES:,} GV50 devices, a store that answers at once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
