"""The allow-list on the running service, real sockets and the real store: TCP and UDP."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol, Protocol

pytestmark = pytest.mark.integration

REGISTERED = "862193020451183"
UNKNOWN = "862894020180553"


def frame(imei: str, count: str) -> bytes:
    return (f"+RESP:GTFRI,0F0106,{imei},,,10,1,1,0.0,163,,-57.513617,-25.368191,20150918182145,,,"
            f",,,21235.0,,,,0,210100,,,,20150918182149,{count}$").encode()


class Device(Protocol):
    def __init__(self) -> None:
        self.received: DeferredQueue = DeferredQueue()
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.put(data)

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(None)


class UdpDevice(DatagramProtocol):
    def __init__(self) -> None:
        self.received: DeferredQueue = DeferredQueue()

    def datagramReceived(self, data: bytes, address: Any) -> None:
        self.received.put(data)


def closed(listener: dict) -> dict:
    return {**listener, "accept_unknown_devices": False}


@pytest_twisted.inlineCallbacks
def test_tcp_allow_list_serves_registered_devices_and_refuses_others(start_server: Any) -> None:
    server = yield start_server(listeners=[closed({"driver": "gv50"})])
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": REGISTERED, "online": False})

    known = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), known)
    known.transport.write(frame(REGISTERED, "00B8"))
    assert (yield known.received.get()) == b"+SACK:00B8$"
    known.transport.write(frame(REGISTERED, "00B9"))
    assert (yield known.received.get()) == b"+SACK:00B9$"
    known.transport.loseConnection()
    yield known.lost

    stranger = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), stranger)
    stranger.transport.write(frame(UNKNOWN, "0001"))
    yield stranger.lost  # closed after its first frame
    assert stranger.received.pending == []

    stored = yield threads.deferToThread(lambda: sorted(d["IMEI"] for d in db["DadosVeiculo"].find({})))
    assert stored == [REGISTERED, REGISTERED]
    assert (yield threads.deferToThread(db["Veiculo"].find_one, {"IMEI": UNKNOWN})) is None


@pytest_twisted.inlineCallbacks
def test_udp_allow_list_drops_datagrams_of_unknown_devices(start_server: Any) -> None:
    server = yield start_server(listeners=[closed({"driver": "generic", "transport": "udp"})])
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": REGISTERED, "online": False})
    device = UdpDevice()
    port = reactor.listenUDP(0, device, interface="127.0.0.1")
    try:
        def report(imei: str, minute: int) -> None:
            line = {"imei": imei, "lat": -34.6, "lon": -58.3, "time": f"2026-01-05T10:{minute:02d}:00Z"}
            device.transport.write(json.dumps(line).encode() + b"\n", ("127.0.0.1", server.port(0)))

        report(UNKNOWN, 1)
        assert (yield device.received.get()) == b"ERR unknown_device\n"
        report(REGISTERED, 2)
        assert (yield device.received.get()) == b"OK 1\n"
    finally:
        yield port.stopListening()
    stored = yield threads.deferToThread(lambda: [d["IMEI"] for d in db["DadosVeiculo"].find({})])
    assert stored == [REGISTERED]
