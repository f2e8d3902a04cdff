"""The UDP adapter (drivers/base.py) with the session registry: online while reporting, allow-list."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from sessions_fakes import (
    DRIVER,
    FakeCollection,
    FakeConnection,
    FakeSink,
    FakeStore,
    clock,
    context,
    registry,
    sample,
)
from waygps.events import DeviceConnected, DeviceDisconnected, Position

IMEI = "862894020180553"
OTHER = "356307042441013"
PEER = ("198.51.100.4", 40000)


class DatagramTransport(StringTransport):
    """Records ``write(data, address)`` as a UDP port would send them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int] | None = None) -> None:  # type: ignore[override]
        self.sent.append((data, address))


def setup(store=None, **listener_values):
    reactor, sink = clock(), FakeSink()
    sessions = registry(store=store, sink=sink, reactor=reactor)
    listener_values.setdefault("transport", "udp")
    protocol = DRIVER.udp_protocol(context(sessions, sink, reactor, **listener_values))
    transport = DatagramTransport()
    protocol.makeConnection(transport)
    return reactor, sink, sessions, protocol, transport


def test_a_udp_device_is_online_while_it_reports_within_the_idle_timeout() -> None:
    reactor, sink, sessions, protocol, transport = setup(idle_timeout=600)
    protocol.datagramReceived(f"{IMEI},1".encode(), PEER)
    peer = sessions.get(IMEI)
    assert peer is not None and peer.transport_name == "udp" and peer.peer == "198.51.100.4:40000"
    assert transport.sent == [(b"ACK,1", PEER)]
    reactor.advance(599)
    protocol.datagramReceived(f"{IMEI},2".encode(), ("198.51.100.4", 40001))  # NAT moved the port
    assert sessions.get(IMEI) is peer and peer.address == ("198.51.100.4", 40001)
    reactor.advance(599)
    assert sessions.get(IMEI) is peer
    reactor.advance(1)
    assert sessions.get(IMEI) is None
    [gone] = sink.of(DeviceDisconnected)
    assert gone.reason == "idle"
    assert len(sink.of(DeviceConnected)) == 1


def test_a_tcp_connection_replaces_a_udp_peer_without_an_offline_flap() -> None:
    reactor, sink, sessions, protocol, transport = setup()
    protocol.datagramReceived(f"{IMEI},1".encode(), PEER)
    peer = sessions.get(IMEI)

    tcp = FakeConnection(IMEI)
    sessions.attach(tcp)
    assert sessions.get(IMEI) is tcp
    assert IMEI not in protocol.peers  # the UDP peer was expired by close()
    assert peer.timer is None or not peer.timer.active()
    assert not sink.of(DeviceDisconnected)


def test_allow_list_drops_datagrams_of_an_unregistered_device() -> None:
    store = FakeStore(FakeCollection([{"IMEI": OTHER}]))
    reactor, sink, sessions, protocol, transport = setup(store=store, name="closed-udp",
                                                         accept_unknown_devices=False)
    before = sample("waygps_connections_refused_total", listener="closed-udp", reason="unknown_device")
    for n in range(3):
        protocol.datagramReceived(f"{IMEI},{n}".encode(), PEER)
    assert sink.events == []
    assert sessions.get(IMEI) is None
    assert transport.sent == [(b"NO\n", PEER)] * 3
    assert sample("waygps_connections_refused_total", listener="closed-udp",
                  reason="unknown_device") == before + 3
    assert store.vehicles.queries == 1  # the negative answer is cached


def test_allow_list_accepts_datagrams_of_a_registered_device() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    reactor, sink, sessions, protocol, transport = setup(store=store, accept_unknown_devices=False)
    protocol.datagramReceived(f"{IMEI},5".encode(), PEER)
    assert [e.key for e in sink.of(Position)] == ["5"]
    assert transport.sent == [(b"ACK,5", PEER)]
    assert sessions.get(IMEI) is not None


def test_stopping_the_udp_listener_takes_its_devices_offline() -> None:
    reactor, sink, sessions, protocol, transport = setup()
    protocol.datagramReceived(f"{IMEI},1".encode(), PEER)
    protocol.datagramReceived(f"{OTHER},1".encode(), PEER)
    protocol.stopProtocol()
    assert sessions.count == 0
    assert {e.imei for e in sink.of(DeviceDisconnected)} == {IMEI, OTHER}


def test_an_unidentified_udp_report_is_logged() -> None:
    from twisted.logger import globalLogPublisher

    from waygps.actions import Store

    reactor, sink, sessions, protocol, transport = setup()
    protocol.codec.receive_datagram = lambda data, now: [Store([])]
    seen: list = []
    globalLogPublisher.addObserver(seen.append)
    try:
        protocol.datagramReceived(b"x", PEER)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert any("198.51.100.4" in str(e.get("peer")) for e in seen)
