"""CPU time per stored-and-acknowledged report: the WayGPS process and the store.

Run: .venv/bin/python benchmarks/bench_cpu_per_report.py [--devices 1000] [--duration 20] [--uri ...]
     [--reactor waygps|default]

The same set-up as ``bench_store.py`` (c): the real service with a GV50
listener in this process, the simulator's devices (closed loop: next report on
its SACK) in another. User + system CPU seconds of this process and of the
embedded store (from /proc) are read when the measurement window opens and
closes, and divided by the reports acknowledged in the window. For
comparison, the store's own cost of one document in ``insert_many`` (with the
same indexes) is measured first. Targets: WayGPS <= 100 us per report.
The process runs on ``waygps.reactor``, as ``make run`` and the systemd unit
run the server (``--reactor default``: Twisted's own epoll reactor).
"""

from __future__ import annotations

import sys
from typing import Any

from bench_store import build_parser, store_limit, waygps  # noqa: E402  (bench_store puts src/ on the path)
from benchlib import Store, install_reactor, machine, raise_fd_limit


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    reactor_name = install_reactor(args.reactor)
    raise_fd_limit()
    from twisted.internet import defer, task

    print(machine(), flush=True)
    store = Store(args.uri)
    results: dict[str, Any] = {}

    async def run(reactor: Any) -> None:
        results["limit"] = await store_limit(store, args)
        results["waygps"] = await waygps(store, args)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code not in (0, None):
            store.close()
            raise
    store.close()
    limit, ours = results["limit"], results["waygps"]
    print(f"\n{machine()}")
    if "pending" in ours:
        print(f"WayGPS run failed: {ours['pending']}")
        return 1
    geo = "with" if args.history_geo_index else "without"
    print(f"store: {'given URI' if args.uri else 'embedded SecantusDB'}, history {geo} the 2dsphere index; "
          f"{args.devices} simulated GV50 devices, {ours['acked']:,} reports acknowledged in {ours['seconds']:.1f} s "
          f"({ours['rate']:,.0f}/s)")
    print(f"WayGPS process: {ours['waygps_cpu_us']:7,.0f} us CPU per stored-and-acknowledged report "
          f"({ours['waygps_user_us']:,.0f} user + {ours['waygps_system_us']:,.0f} system; target <= 100; "
          f"reactor {reactor_name})")
    print(f"load generator: {ours['loadgen_cpu_us']:7,.0f} us CPU per report (the simulated devices, another process)")
    if "store_cpu_us" in ours:
        print(f"store process:  {ours['store_cpu_us']:7,.0f} us CPU per report under WayGPS (reports and the "
              f"Veiculo upserts)")
    if "store_cpu_us" in limit:
        print(f"store process:  {limit['store_cpu_us']:7,.0f} us CPU per document in insert_many x{args.batch} "
              f"(the store's own floor, {limit['rate']:,.0f} docs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
