"""End to end with the embedded store: a Teltonika device over real TCP and UDP sockets.

Order checked: packet in -> documents stored -> answer out. The answer is read first and
the database queried right after it: the documents must already be there.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol, Protocol

from teltonika_vectors import IMEI, tv

pytestmark = pytest.mark.integration

TIMEOUT = 20.0


class Device(Protocol):
    """A device's TCP side: collects what the server writes; ``read(n)`` waits for n bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: tuple[int, Deferred] | None = None
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self._check()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def read(self, count: int) -> Deferred:
        d: Deferred = Deferred()
        d.addTimeout(TIMEOUT, reactor)
        self.waiting = (count, d)
        self._check()
        return d

    def _check(self) -> None:
        if self.waiting and len(self.buffer) >= self.waiting[0]:
            count, d = self.waiting
            self.waiting = None
            data, self.buffer = self.buffer[:count], self.buffer[count:]
            d.callback(data)


class UdpDevice(DatagramProtocol):
    def __init__(self) -> None:
        self.replies: DeferredQueue = DeferredQueue()

    def datagramReceived(self, data: bytes, address: Any) -> None:
        self.replies.put(data)


def positions(server: Any, imei: str) -> Deferred:
    return server.store.collection("positions").find({"IMEI": imei})


@pytest_twisted.inlineCallbacks
def test_tcp_device_end_to_end(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "teltonika", "transport": "tcp"}])
    device = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    device.transport.write(tv("TV-01"))
    assert (yield device.read(1)) == b"\x01"
    assert (yield positions(server, IMEI)) == []

    device.transport.write(tv("TV-04"))
    assert (yield device.read(4)) == b"\x00\x00\x00\x02"
    docs = yield positions(server, IMEI)
    assert len(docs) == 2  # stored before the answer went out
    by_time = sorted(docs, key=lambda d: d["dataDevice"])
    assert [d["attributes"]["din1"] for d in by_time] == [False, True]
    assert all(d["protocol"] == "teltonika" and d["event"] == "1" and d["valid"] is False for d in docs)

    device.transport.write(tv("TV-04"))  # re-sent after a lost answer: stored once
    assert (yield device.read(4)) == b"\x00\x00\x00\x02"
    assert len((yield positions(server, IMEI))) == 2

    device.transport.write(b"\xff" + tv("TV-16"))  # keep-alive, then a packet with VIN and a fix
    assert (yield device.read(4)) == b"\x00\x00\x00\x01"
    docs = yield positions(server, IMEI)
    vin = [d for d in docs if d["attributes"].get("vin")]
    assert len(vin) == 1 and vin[0]["ignicao"] is True and vin[0]["valid"] is True
    assert vin[0]["location"] == {"type": "Point", "coordinates": [6.7877833, 52.0296716]}
    device.transport.loseConnection()
    yield device.closed


@pytest_twisted.inlineCallbacks
def test_udp_device_end_to_end(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "teltonika", "transport": "udp"}])
    device = UdpDevice()
    port = reactor.listenUDP(0, device, interface="127.0.0.1")
    try:
        device.transport.write(tv("TV-14"), ("127.0.0.1", server.port(0)))
        reply = yield device.replies.get().addTimeout(TIMEOUT, reactor)
        assert reply == bytes.fromhex("0005CAFE012201")
        docs = yield positions(server, "357454072713975")
        assert len(docs) == 1  # stored before the answer went out
        doc = docs[0]
        assert (doc["latitude"], doc["longitude"], doc["altitude"], doc["speed"], doc["satellites"]) == (
            51.630115,
            0.4124566,
            99.0,
            49.0,
            9,
        )
        assert doc["attributes"]["power"] == 14.364 and doc["attributes"]["trip_odometer"] == 225

        bad = bytearray(tv("TV-14"))
        bad[12] = ord("x")  # invalid IMEI: dropped, no answer
        device.transport.write(bytes(bad), ("127.0.0.1", server.port(0)))
        device.transport.write(tv("TV-14"), ("127.0.0.1", server.port(0)))  # re-sent: stored once
        reply = yield device.replies.get().addTimeout(TIMEOUT, reactor)
        assert reply == bytes.fromhex("0005CAFE012201")
        assert len((yield positions(server, "357454072713975"))) == 1
    finally:
        yield port.stopListening()
