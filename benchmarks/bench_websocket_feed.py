"""The live feed under load: subscribed WebSocket clients while GV50 devices report over TCP.

    .venv/bin/python benchmarks/bench_websocket_feed.py [--clients 500] [--devices 500] [--rate 2000]
        [--per-client 4] [--seconds 30] [--warmup 5]

Three processes on this machine: the real server (``twistd waygps``, embedded store in a temporary
directory), the clients (Autobahn, each subscribed to ``--per-client`` devices) and the devices
(``--devices`` GV50 TCP connections sending ``--rate`` reports per second in total). Each report
carries its send time (wall clock) in its altitude field, so a client computes the latency from the
report's arrival at the server's socket to its ``gps_update`` (through decoding, the store's
acknowledgement, the bus and the feed). Prints p50 / p99 / max of that latency, the updates the
clients received, and the CPU used by the server and by the store (from /proc).
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
BASE_IMEI = 862894020100000


def imei(n: int) -> str:
    return str(BASE_IMEI + n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- clients role ----------------------------------------------------------------------------------
def run_clients(args: argparse.Namespace) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    latencies: list[float] = []
    state: dict = {"open": 0, "updates": 0, "measuring": False, "closed": 0}

    def masked(payload: bytes) -> bytes:
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + size.to_bytes(2, "big")
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    class Client(Protocol):
        """A WebSocket client kept minimal (hand-made handshake, frames parsed with slicing), so that
        one Python process can take every client's messages without being what is measured."""

        def connectionMade(self) -> None:
            self.buffer = b""
            self.opened = False
            self.transport.write((f"GET /ws/gps/?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                                  ).encode())

        def dataReceived(self, data: bytes) -> None:
            now = time.time()
            buffer = self.buffer + data
            if not self.opened:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    self.buffer = buffer
                    return
                if not buffer.startswith(b"HTTP/1.1 101"):
                    print(f"refused: {buffer[:40]!r}", flush=True)
                    self.transport.loseConnection()
                    return
                buffer = buffer[end + 4:]
                self.opened = True
                for imei_ in self.factory.watch:
                    self.transport.write(masked(json.dumps({"type": "subscribe_mobile", "mobile_id": imei_}).encode()))
                state["open"] += 1
                if state["open"] == args.clients:
                    print("ready", flush=True)
                    state["ready"]()
            offset = 0
            while len(buffer) - offset >= 2:
                opcode, size = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
                head = 2
                if size == 126:
                    if len(buffer) - offset < 4:
                        break
                    size, head = int.from_bytes(buffer[offset + 2:offset + 4], "big"), 4
                elif size == 127:
                    if len(buffer) - offset < 10:
                        break
                    size, head = int.from_bytes(buffer[offset + 2:offset + 10], "big"), 10
                if len(buffer) - offset < head + size:
                    break
                if opcode == 0x1:
                    self.message(buffer[offset + head:offset + head + size], now)
                elif opcode == 0x9:  # answer pings
                    self.transport.write(bytes([0x8A, 0x80 | size]) + b"\0\0\0\0" + buffer[offset + head:offset + head + size])
                offset += head + size
            self.buffer = buffer[offset:]

        def message(self, payload: bytes, now: float) -> None:
            at = payload.find(b'"altitud":')
            if at < 0:
                return
            end = payload.find(b",", at)
            latency = (now % 1000.0) - float(payload[at + 10:end])
            if latency < -500:
                latency += 1000.0
            state["updates"] += 1
            if state["measuring"]:
                latencies.append(latency)

        def connectionLost(self, reason: object = None) -> None:
            state["closed"] += 1

    def open_one(n: int) -> None:
        factory = ClientFactory()
        factory.protocol = Client
        factory.watch = [imei((n * args.per_client + j) % args.devices) for j in range(args.per_client)]
        reactor.connectTCP("127.0.0.1", args.port, factory)

    for n in range(args.clients):  # 20 connections every 50 ms: not a SYN flood on the listen backlog
        reactor.callLater(n // 20 * 0.05, open_one, n)

    def give_up() -> None:
        if state["open"] < args.clients:
            print(f"only {state['open']} of {args.clients} clients connected ({state['closed']} closed)", flush=True)
            reactor.stop()

    reactor.callLater(120, give_up)

    def start() -> None:
        state["measuring"] = True
        reactor.callLater(args.seconds, stop)

    def stop() -> None:
        state["measuring"] = False
        print(json.dumps({"latencies": latencies, "updates": state["updates"], "closed": state["closed"]}), flush=True)
        reactor.stop()

    def ready() -> None:
        reactor.callLater(args.warmup, start)

    state["ready"] = ready
    reactor.run()


# --- devices role ----------------------------------------------------------------------------------
def run_devices(args: argparse.Namespace) -> None:
    from twisted.internet import reactor, task
    from twisted.internet.protocol import ClientFactory, Protocol

    base = args.base  # fix times in the past, one second apart per report
    sent: dict = {"reports": 0, "acks": 0}

    class Device(Protocol):
        def connectionMade(self) -> None:
            self.n = 0
            self.factory.live.append(self)

        def dataReceived(self, data: bytes) -> None:
            for answer in data.split(b"$"):
                if answer.startswith(b"+SACK:") and b"," not in answer:
                    sent["acks"] += 1

        def report(self) -> None:
            self.n += 1
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(base + self.n % 65536))
            altitude = time.time() % 1000.0
            lat = -17.7 + (self.factory.index % 100) / 1000 + self.n / 100000
            frame = (f"+RESP:GTFRI,060228,{self.factory.imei},,,10,1,1,40.0,90,{altitude:.4f},-63.100000,"
                     f"{lat:.6f},{stamp},0736,0003,6AAE,3381,00,913.3,,,,80,220101,,,,{stamp},"
                     f"{self.n % 65536:04X}$")
            self.transport.write(frame.encode())
            sent["reports"] += 1

    live: list[Device] = []
    for n in range(args.devices):
        factory = ClientFactory()
        factory.protocol = Device
        factory.imei = imei(n)
        factory.index = n
        factory.live = live
        reactor.connectTCP("127.0.0.1", args.device_port, factory)

    # Every tick, each device in turn: ``rate`` reports per second spread over the devices.
    tick = 0.05
    carry = {"credit": 0.0, "next": 0, "last": 0.0}

    def pump() -> None:
        if not live:
            return
        now = time.monotonic()
        carry["credit"] += args.rate * (now - carry["last"]) if carry["last"] else args.rate * tick
        carry["credit"] = min(carry["credit"], args.rate * 0.1)  # no burst after a stall
        carry["last"] = now
        while carry["credit"] >= 1:
            carry["credit"] -= 1
            live[carry["next"] % len(live)].report()
            carry["next"] += 1

    loop = task.LoopingCall(pump)
    reactor.callLater(1.0, loop.start, tick)

    def stop() -> None:
        print(json.dumps(sent), flush=True)
        reactor.stop()

    reactor.callLater(args.warmup + args.seconds + 2, stop)
    reactor.run()


# --- feed-only server role ------------------------------------------------------------------------
def run_feed_server(args: argparse.Namespace) -> None:
    """The real feed (GpsFeedFactory on the real site) with stored reports published straight on the bus."""
    from datetime import datetime, timezone

    from autobahn.twisted.resource import WebSocketResource
    from twisted.internet import reactor, task
    from twisted.internet.defer import succeed

    from waygps.bus import EventBus
    from waygps.config import WebSocketConfig, _token
    from waygps.events import Position
    from waygps.web.site import build_site
    from waygps.web.websocket import GpsFeedFactory

    class NoVehicles:
        def collection(self, kind: str) -> "NoVehicles":
            return self

        def find(self, query: object) -> object:
            return succeed([])

    bus = EventBus()
    config = WebSocketConfig(tokens=(_token(0, {"token": TOKEN}),), max_clients=args.clients + 10,
                             max_connections_per_token=args.clients + 10)
    feed = GpsFeedFactory(config, NoVehicles(), bus, reactor=reactor)
    site = build_site([], {"/ws/gps/": WebSocketResource(feed)}, reactor=reactor)
    port = reactor.listenTCP(args.port, site, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    counter = {"n": 0, "credit": 0.0, "last": 0.0}
    tick = 0.01

    def pump() -> None:
        # Credit from the time that really passed: a late tick (loaded machine) publishes more.
        now = time.monotonic()
        counter["credit"] += args.rate * (now - counter["last"]) if counter["last"] else args.rate * tick
        counter["credit"] = min(counter["credit"], args.rate * 0.1)  # no burst after a stall
        counter["last"] = now
        while counter["credit"] >= 1:
            counter["credit"] -= 1
            n = counter["n"] = counter["n"] + 1
            now = time.time()
            bus.publish(Position(imei=imei(n % args.devices), protocol="gv50",
                                 device_time=datetime.fromtimestamp(args.base + n, timezone.utc),
                                 server_time=datetime.fromtimestamp(now, timezone.utc), event="GTFRI", key=str(n),
                                 valid=True, latitude=-17.7, longitude=-63.1, altitude=now % 1000.0, speed=40.0,
                                 course=90.0, ignition=True, attributes={"battery_percent": 80}))

    loop = task.LoopingCall(pump)
    reactor.callLater(args.warmup / 2, loop.start, tick)
    reactor.run()


# --- orchestration -----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def feed_only(args: argparse.Namespace) -> None:
    me = [sys.executable, __file__, "--clients", str(args.clients), "--devices", str(args.devices),
          "--rate", str(args.rate), "--per-client", str(args.per_client), "--seconds", str(args.seconds),
          "--warmup", str(args.warmup), "--base", str(args.base)]
    server = subprocess.Popen(me + ["--role", "feed-server", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = subprocess.Popen(me + ["--role", "clients", "--port", str(port)], stdout=subprocess.PIPE,
                                   text=True)
        assert clients.stdout is not None
        line = clients.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"clients did not connect: {line}")
        cpu0, started = cpu_seconds(server.pid), time.monotonic()
        result = json.loads(clients.stdout.readline())
        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - started) * 100
        clients.wait(30)
    finally:
        server.terminate()
        server.wait(30)
    latencies = [v * 1000 for v in result["latencies"]]
    print(f"load average: {os.getloadavg()} (machine shared with other work)")
    print(f"feed only: {args.clients} clients x {args.per_client} subscribed devices, {args.devices} devices, "
          f"{args.rate:.0f} stored reports/s published on the bus")
    print(f"gps_update latency (published -> client): p50 {percentile(latencies, 0.5):.1f} ms, "
          f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms over {len(latencies)} updates in "
          f"{args.seconds:.0f} s ({len(latencies) / args.seconds:.0f} updates/s to clients)")
    print(f"feed server CPU {cpu:.0f}% of one core; clients closed by the server: {result['closed']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("run", "clients", "devices", "feed-server"), default="run")
    parser.add_argument("--feed-only", action="store_true",
                        help="no devices and no store: the server publishes stored reports on the bus itself")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--rate", type=float, default=2000.0, help="reports per second, all devices together")
    parser.add_argument("--per-client", type=int, default=4, help="devices each client subscribes to")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--device-port", type=int, default=0)
    parser.add_argument("--base", type=int, default=int(time.time()) - 7 * 86400)
    args = parser.parse_args()
    if args.role == "clients":
        run_clients(args)
        return
    if args.role == "devices":
        run_devices(args)
        return
    if args.role == "feed-server":
        run_feed_server(args)
        return
    if args.feed_only:
        feed_only(args)
        return

    work = Path(tempfile.mkdtemp(prefix="waygps-bench-feed-"))
    web, gv50, store = free_port(), free_port(), free_port()
    (work / "waygps.toml").write_text(f"""
[mongodb]
database = "bench"
write_concern = "1"
[embedded]
data_dir = "{work / 'db'}"
port = {store}
[[listener]]
driver = "gv50"
transport = "tcp"
host = "127.0.0.1"
port = {gv50}
max_connections_per_ip = 0
[websocket]
host = "127.0.0.1"
port = {web}
max_clients = {args.clients + 10}
max_connections_per_token = {args.clients + 10}
[[websocket.tokens]]
token = "{TOKEN}"
devices = "*"
[logging]
level = "warn"
""")
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "twistd"), "--nodaemon", "--pidfile=", "waygps",
                               "--config", str(work / "waygps.toml")], cwd=work,
                              stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)
    me = [sys.executable, __file__, "--clients", str(args.clients), "--devices", str(args.devices),
          "--rate", str(args.rate), "--per-client", str(args.per_client), "--seconds", str(args.seconds),
          "--warmup", str(args.warmup), "--port", str(web), "--device-port", str(gv50), "--base", str(args.base)]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web}/health", timeout=2).read()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start: {(work / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        clients = subprocess.Popen(me + ["--role", "clients"], stdout=subprocess.PIPE, text=True)
        assert clients.stdout is not None
        line = clients.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"clients did not connect: {line}")
        stores = children(server.pid)
        cpu0 = {pid: cpu_seconds(pid) for pid in [server.pid] + stores}
        started = time.monotonic()
        devices = subprocess.Popen(me + ["--role", "devices"], stdout=subprocess.PIPE, text=True)
        result = json.loads(clients.stdout.readline())
        elapsed = time.monotonic() - started
        cpu1 = {pid: cpu_seconds(pid) for pid in cpu0}
        sent = json.loads(devices.communicate(timeout=120)[0].strip().splitlines()[-1])
        clients.wait(30)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = [v * 1000 for v in result["latencies"]]
    stored_rate = sent["acks"] / (args.seconds + args.warmup + 2)
    server_cpu = (cpu1[server.pid] - cpu0[server.pid]) / elapsed * 100
    store_cpu = sum(cpu1[p] - cpu0[p] for p in stores) / elapsed * 100
    print(f"load average before/after: {os.getloadavg()} (machine shared with other work)")
    print(f"{args.clients} clients x {args.per_client} subscribed devices, {args.devices} devices, "
          f"{args.rate:.0f} reports/s target; {sent['reports']} reports sent, {sent['acks']} acknowledged")
    if latencies:
        print(f"gps_update latency (report sent -> client): p50 {percentile(latencies, 0.5):.1f} ms, "
              f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms over {len(latencies)} updates "
              f"in {args.seconds:.0f} s ({len(latencies) / args.seconds:.0f} updates/s to clients)")
        print(f"reports stored and acknowledged: about {stored_rate:.0f}/s")
    else:
        print("no gps_update measured")
    print(f"server CPU {server_cpu:.0f}% of one core, store {store_cpu:.0f}% (over {elapsed:.0f} s); "
          f"clients closed by the server: {result['closed']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
