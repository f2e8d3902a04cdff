"""Fakes for the session tests: a small line codec through CodecDriver, a sink, a store, connections.

The codec is deliberately tiny (not a real protocol), so these tests exercise
drivers/base.py and sessions.py alone:

TCP lines: ``ID,<imei>`` identifies (accept ``OK\\n``, reject ``NO\\n``);
``POS,<n>`` is report n (acknowledged ``ACK,<n>\\n`` after store);
``HB`` a heartbeat (answered ``HB\\n`` at once); anything else is rejected.
UDP datagrams: ``<imei>,<n>`` = identification + report n.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from zope.interface import implementer

from waygps.actions import Identified, Rejected, Send, Store
from waygps.bus import EventBus
from waygps.config import ListenerConfig
from waygps.drivers.base import CodecDriver, DriverContext
from waygps.events import Heartbeat, Position
from waygps.interfaces import IDeviceConnection, IEventSink

T0 = 1_764_000_000.0  # 2025-11-24, so that codec times are not 1970


def position(imei: str, n: str, now: datetime) -> Position:
    return Position(imei=imei, protocol="fake", device_time=now, server_time=now, event="POS", key=n,
                    valid=True, latitude=-17.7, longitude=-63.1)


class FakeStreamCodec:
    def __init__(self, listener: ListenerConfig) -> None:
        self.buffer = b""
        self.imei: str | None = None

    def receive(self, data: bytes, now: datetime) -> list[Any]:
        self.buffer += data
        actions: list[Any] = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            fields = line.decode("ascii", "replace").strip().split(",")
            if fields[0] == "ID" and len(fields) == 2:
                self.imei = fields[1]
                actions.append(Identified(fields[1], accept=b"OK\n", reject=b"NO\n"))
            elif fields[0] == "POS" and len(fields) == 2 and self.imei:
                ack = b"ACK," + fields[1].encode() + b"\n"
                actions.append(Store([position(self.imei, fields[1], now)], ack=ack))
            elif fields[0] == "HB" and self.imei:
                actions.append(Send(b"HB\n"))
                actions.append(Store([Heartbeat(imei=self.imei, protocol="fake", server_time=now)]))
            else:
                actions.append(Rejected("bad_line", line))
        return actions

    def encode_command(self, command: Any, now: datetime) -> bytes:
        return f"CMD,{command.type}\n".encode()


class FakeDatagramCodec:
    def __init__(self, listener: ListenerConfig) -> None:
        pass

    def receive_datagram(self, data: bytes, now: datetime) -> list[Any]:
        try:
            imei, n = data.decode("ascii").split(",")
        except ValueError:
            return [Rejected("bad_datagram", data)]
        return [Identified(imei, accept=b"", reject=b"NO\n"),
                Store([position(imei, n, now)], ack=b"ACK," + n.encode())]

    def encode_command(self, command: Any, now: datetime) -> bytes:
        return f"CMD,{command.type}".encode()


DRIVER = CodecDriver("fake", "test codec", stream_codec=FakeStreamCodec, datagram_codec=FakeDatagramCodec)


@implementer(IEventSink)
class FakeSink:
    """Records deliveries; ``hold = True`` keeps their Deferreds pending in ``pending``."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.pending: list[Deferred] = []
        self.hold = False
        self.failing = False
        self.watched: set[Any] = set()

    def deliver(self, events: Any) -> Deferred:
        if self.failing:
            return fail(RuntimeError("store down"))
        self.events.extend(events)
        if self.hold:
            d: Deferred = Deferred()
            self.pending.append(d)
            return d
        return succeed(None)

    def watch(self, producer: Any) -> None:
        self.watched.add(producer)

    def unwatch(self, producer: Any) -> None:
        self.watched.discard(producer)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class FakeCollection:
    """``find_one`` answers from ``documents``; counts queries; can hang or fail."""

    def __init__(self, documents: list[dict] | None = None) -> None:
        self.documents = documents or []
        self.queries = 0
        self.hang: list[Deferred] | None = None
        self.error: Exception | None = None

    def find_one(self, query: dict, projection: Any = None) -> Deferred:
        self.queries += 1
        if self.error is not None:
            return fail(self.error)
        if self.hang is not None:
            d: Deferred = Deferred()
            self.hang.append(d)
            return d
        for doc in self.documents:
            if all(doc.get(k) == v for k, v in query.items()):
                return succeed(doc)
        return succeed(None)


class FakeStore:
    def __init__(self, vehicles: FakeCollection | None = None) -> None:
        self.vehicles = vehicles or FakeCollection()

    def collection(self, kind: str) -> Any:
        assert kind == "vehicles"
        return self.vehicles


@implementer(IDeviceConnection)
class FakeConnection:
    """A channel that records ``close``; ``registry`` makes close detach at once (like a UdpPeer)."""

    def __init__(self, imei: str, peer: str = "10.0.0.1:5000", listener: str = "fake-tcp-1",
                 transport_name: str = "tcp", registry: Any = None) -> None:
        self.imei = imei
        self.protocol = "fake"
        self.peer = peer
        self.listener = listener
        self.transport_name = transport_name
        self.closed: list[str] = []
        self.registry = registry

    def send_command(self, command: Any) -> bytes:
        return b""

    def close(self, reason: str) -> None:
        self.closed.append(reason)
        if self.registry is not None:
            self.registry.detach(self, reason)


def clock() -> MemoryReactorClock:
    reactor = MemoryReactorClock()
    reactor.advance(T0)
    return reactor


def listener(**values: Any) -> ListenerConfig:
    values.setdefault("name", "fake-tcp-1")
    return ListenerConfig(driver="fake", port=0, **values)


def connect(factory: Any, host: str = "10.0.0.1", port: int = 5000) -> tuple[Any, StringTransport]:
    """Build a protocol as a TCP port would, and connect it to a StringTransport (None if refused)."""
    address = IPv4Address("TCP", host, port)
    protocol = factory.buildProtocol(address)
    if protocol is None:
        return None, None  # type: ignore[return-value]
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def lose(protocol: Any) -> None:
    """What the reactor does after ``loseConnection``: report the connection lost."""
    protocol.connectionLost(Failure(ConnectionDone()))


def context(registry: Any, sink: Any, reactor: Any, **listener_values: Any) -> DriverContext:
    return DriverContext(listener=listener(**listener_values), sink=sink, sessions=registry, reactor=reactor)


def registry(store: Any = None, sink: Any = None, reactor: Any = None, bus: Any = None, **kw: Any) -> Any:
    from waygps.sessions import SessionRegistry

    return SessionRegistry(store or FakeStore(), sink or FakeSink(), bus or EventBus(), reactor or clock(),
                           "test-instance", **kw)


def sample(name: str, **labels: str) -> float:
    """Current value of a sample in the default registry (0 when it does not exist yet)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value

