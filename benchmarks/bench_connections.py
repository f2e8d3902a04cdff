"""Concurrent device connections one WayGPS process holds, and its resident memory per connection.

Run: .venv/bin/python benchmarks/bench_connections.py [--steps 1000,2500,5000,10000]

Starts the real server (``twistd -n --reactor waygps waygps``, GV50 listener, its embedded
store) as a child process, measures its resident memory (RSS, from /proc)
once it is idle, then opens simulated GV50 devices (``waygps.simulate``) in
this process in steps. Each device connects, sends one GTFRI (so the server
has identified it and holds a session) and then stays connected without
sending. After each step: connections open on the device side, the server's
RSS, and the RSS above the baseline per connection (target: 10,000
connections under 10 KB each). The file limit (RLIMIT_NOFILE) is raised for
this process and the server (both ends of every connection are on this
machine). The store is a separate process: its memory is not counted.
Each reading is taken once every device of the step is connected and
acknowledged and the server is idle (its CPU under ``--quiet-cpu`` for 2 s),
so it counts held connections, not reports in flight. ``--backlog`` sets the
listener's listen queue (default: the server's, 1024).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import cpu_seconds, free_port, machine, raise_fd_limit, rss_bytes  # noqa: E402  (puts src/ on the path)

CONFIG = """
[mongodb]
database = "bench_connections"

[embedded]
data_dir = "{data}"
port = {store_port}

[[listener]]
driver = "gv50"
transport = "tcp"
host = "127.0.0.1"
port = {port}
max_connections = {max_connections}
backlog = {backlog}

[websocket]
host = "127.0.0.1"
port = {web_port}
"""


def start_server(directory: Path, port: int, max_connections: int, backlog: int) -> subprocess.Popen:
    config = directory / "waygps.toml"
    config.write_text(CONFIG.format(data=directory / "db", store_port=free_port(), port=port,
                                    max_connections=max_connections, backlog=backlog, web_port=free_port()))
    twistd = Path(sys.executable).with_name("twistd")
    process = subprocess.Popen([str(twistd), "--nodaemon", "--pidfile=", "--reactor", "waygps", "waygps",
                                "--config", str(config)],
                               stdout=open(directory / "server.log", "wb"), stderr=subprocess.STDOUT,
                               cwd=directory)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(directory / 'server.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not listen within 120 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1000,2500,5000,10000",
                        help="connection counts to measure at (comma-separated, increasing)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each measurement")
    parser.add_argument("--rate", type=float, default=500.0, help="new connections per second")
    parser.add_argument("--backlog", type=int, default=1024, help="the listener's backlog (the server's default)")
    parser.add_argument("--keep", action="store_true", help="keep the server's directory (its log) and print where")
    parser.add_argument("--quiet-cpu", type=float, default=0.02,
                        help="the server counts as idle when it uses less than this share of a core for 2 s")
    args = parser.parse_args(argv)
    steps = [int(x) for x in args.steps.split(",")]
    limit = raise_fd_limit(2 * steps[-1] + 1000)
    print(machine(), flush=True)
    if limit < steps[-1] + 500:
        print(f"warning: file limit {limit} is too low for {steps[-1]} connections", flush=True)

    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import deferLater

    from waygps.simulate.device import DeviceSettings
    from waygps.simulate.fleet import Fleet, FleetOptions
    from waygps.simulate.stats import Stats

    directory = Path(tempfile.mkdtemp(prefix="waygps-bench-conn-"))
    port = free_port()
    server = start_server(directory, port, steps[-1] + 100, args.backlog)
    stats = Stats()
    fleets: list[Fleet] = []
    rows: list[tuple[int, int, float, float]] = []

    async def sleep(seconds: float) -> None:
        await deferLater(reactor, seconds, lambda: None)

    async def quiet(deadline: float) -> bool:
        """Wait until the server is idle: no report in flight, nothing to write (CPU near zero for 2 s)."""
        while time.monotonic() < deadline:
            before = cpu_seconds(server.pid)
            await sleep(2.0)
            if (cpu_seconds(server.pid) - before) / 2.0 < args.quiet_cpu:
                return True
        return False

    async def run() -> None:
        await sleep(args.settle)
        await quiet(time.monotonic() + 60)
        baseline = rss_bytes(server.pid)
        print(f"server idle: RSS {baseline / 2**20:.1f} MiB (pid {server.pid})", flush=True)
        opened = 0
        for target in steps:
            count = target - opened
            options = FleetOptions(driver="gv50", host="127.0.0.1", port=port, devices=count, interval=86400.0,
                                   first_report_within=1.0, ramp_up=count / args.rate, first_device=opened,
                                   settings=DeviceSettings(ack_timeout=600.0, heartbeat=0.0), reconnect_delay=30.0,
                                   tick=1.0)
            fleet = Fleet(reactor, options, stats)
            fleets.append(fleet)
            fleet.start()
            opened = target
            # Measure only when every device is connected and acknowledged and the server is idle:
            # memory read while first reports are in flight counts their work, not the connections.
            deadline = time.monotonic() + 300 + count / 20
            while (stats.connected < target or stats.acked < target) and time.monotonic() < deadline:
                await sleep(0.5)
            await sleep(args.settle)
            idle = await quiet(time.monotonic() + 120)
            if stats.acked < target or not idle:
                print(f"warning: measured with {stats.acked} of {target} first reports acknowledged, server "
                      f"{'idle' if idle else 'still busy'}", flush=True)
            rss = rss_bytes(server.pid)
            per = (rss - baseline) / max(1, stats.connected)
            rows.append((target, stats.connected, rss / 2**20, per / 1024))
            print(f"{target:>6} devices: {stats.connected:>6} connected, {stats.acked:>6} first reports "
                  f"acknowledged, server RSS {rss / 2**20:7.1f} MiB, {per / 1024:5.2f} KiB per connection "
                  f"above the idle baseline ({stats.disconnects} lost, {stats.connect_failures} failed)",
                  flush=True)
        for fleet in fleets:
            fleet.stop()
        await sleep(1.0)

    def done(result: Any) -> None:
        reactor.stop()
        return result

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(done))
    try:
        reactor.run()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep:
            print(f"server directory kept: {directory}", flush=True)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"\n{machine()}")
    print("| connections held | server RSS (MiB) | RSS per connection above idle (KiB) |")
    print("|---|---|---|")
    for _, connected, rss, per in rows:
        print(f"| {connected:,} | {rss:,.1f} | {per:.2f} |")
    if rows:
        held, per = rows[-1][1], rows[-1][3]
        print(f"\n{held:,} connections held by one process, {per:.2f} KiB each above the idle baseline "
              f"(target: 10,000 under 10 KB)")
    if len(rows) > 1:
        (_, c0, r0, _), (_, c1, r1, _) = rows[-2], rows[-1]
        if c1 > c0:
            print(f"marginal: {(r1 - r0) * 1024 / (c1 - c0):.2f} KiB per connection from {c0:,} to {c1:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
