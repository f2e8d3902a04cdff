"""The generic codecs through the real Twisted adapter (waygps.drivers.base), with waygps.testing fakes.

TCP with ``StringTransport``, UDP with a recording transport; the sink hands
back Deferreds the test fires, so acknowledgements are seen to wait for the store.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from waygps.config import ListenerConfig
from waygps.drivers.generic.driver import driver
from waygps.drivers.generic.http import response
from waygps.testing import FakeSessions, HeldSink, driver_context, listener_config

LINE = b"IMEI: 123456789012345, LAT: -34.603722, LON: -58.381592, SPD: 45, HDG: 180\n"


class FakeSink(HeldSink):
    """The kit's ``HeldSink``; ``delivered`` is its list of (events, Deferred)."""

    @property
    def delivered(self) -> list[tuple[Any, Deferred]]:
        return self.batches


def listener(transport: str = "tcp", **overrides: Any) -> ListenerConfig:
    options = {**driver.options, **overrides.pop("options", {})}
    return listener_config("generic", transport, options=options, port=8082, name="generic-test", **overrides)


def rejected(reason: str) -> float:
    labels = {"driver": "generic", "reason": reason}
    return REGISTRY.get_sample_value("waygps_frames_rejected_total", labels) or 0.0


class Tcp:
    def __init__(self, allowed: bool = True, **overrides: Any) -> None:
        self.sink = FakeSink()
        self.sessions = FakeSessions(allowed)
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1714564800)
        context = driver_context(listener("tcp", **overrides), sink=self.sink, sessions=self.sessions,
                                 reactor=self.reactor)
        self.protocol = driver.tcp_factory(context).buildProtocol(IPv4Address("TCP", "10.0.0.5", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.5", 40000))
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def written(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


def test_tcp_line_is_acknowledged_only_after_it_is_stored():
    tcp = Tcp()
    tcp.send(LINE)
    assert tcp.sessions.asked == ["123456789012345"]
    assert tcp.protocol.imei == "123456789012345"
    ((events, stored),) = tcp.sink.delivered
    assert events[0].latitude == -34.603722 and events[0].device_time.timestamp() == 1714564800
    assert tcp.written() == b""
    stored.callback(None)
    assert tcp.written() == b"OK 1\n"


def test_tcp_acks_go_out_in_line_order():
    tcp = Tcp()
    tcp.send(b"id=a,lat=1,lon=2,time=1714564000\nid=a,lat=1,lon=2,time=1714564060,event=x\n")
    (_, first), (_, second) = tcp.sink.delivered
    second.callback(None)
    assert tcp.written() == b""
    first.callback(None)
    assert tcp.written() == b"OK 1\nOK 1\n"


def test_tcp_store_failure_answers_err_store_failed():
    tcp = Tcp()
    tcp.send(LINE)
    tcp.sink.delivered[0][1].errback(RuntimeError("store down"))
    assert tcp.written() == b"ERR store_failed\n"
    assert not tcp.transport.disconnecting


def test_tcp_rejection_is_answered_and_counted():
    tcp = Tcp()
    before = rejected("lon_out_of_range")
    tcp.send(b"id=a,lat=1,lon=200\n")
    assert tcp.written() == b"ERR lon_out_of_range\n"
    assert rejected("lon_out_of_range") == before + 1
    assert tcp.sink.delivered == [] and not tcp.transport.disconnecting


def test_tcp_over_long_line_is_counted_and_the_buffer_stays_bounded():
    tcp = Tcp(options={"max_line_bytes": 100})
    before = rejected("line_too_long")
    for _ in range(50):
        tcp.send(b"x" * 1000)
    assert rejected("line_too_long") == before + 1
    assert tcp.protocol.codec.buffered <= 100
    assert tcp.written() == b"ERR line_too_long\n"
    tcp.send(b"\n" + LINE)
    tcp.sink.delivered[0][1].callback(None)
    assert tcp.written() == b"OK 1\n"


def test_tcp_unknown_device_is_refused_and_closed():
    tcp = Tcp(allowed=False)
    tcp.send(LINE)
    assert tcp.written() == b"ERR unknown_device\n"
    assert tcp.transport.disconnecting and tcp.sink.delivered == []


def test_tcp_acks_switched_off():
    tcp = Tcp(ack=False)
    tcp.send(LINE + b"id=a,lat=1,lon=200\n")
    tcp.sink.delivered[0][1].callback(None)
    assert tcp.written() == b""
    assert len(tcp.sink.delivered) == 1


def test_http_get_is_answered_200_after_store():
    tcp = Tcp()
    tcp.send(b"GET /?id=phone1&lat=-34.6&lon=-58.4&timestamp=1714564700&speed=10 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert tcp.protocol.imei == "phone1"
    ((events, stored),) = tcp.sink.delivered
    assert tcp.written() == b""
    stored.callback(None)
    assert tcp.written() == response(200, "OK 1\n")


def test_http_post_is_answered_503_when_the_store_fails():
    tcp = Tcp()
    body = b'{"id": "p", "lat": 1, "lon": 2}'
    tcp.send(b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert tcp.sink.delivered == []
    tcp.send(body)
    tcp.sink.delivered[0][1].errback(RuntimeError("down"))
    assert tcp.written() == response(503, "ERR store_failed\n")


def test_http_bad_request_is_answered_400_counted_and_closed():
    tcp = Tcp()
    before = rejected("time_in_future")
    tcp.send(b"GET /?id=p&lat=1&lon=2&timestamp=1814564800 HTTP/1.1\r\n\r\n")
    assert tcp.written() == response(400, "ERR time_in_future\n")
    assert tcp.transport.disconnecting
    assert rejected("time_in_future") == before + 1


def test_http_unknown_device_gets_403():
    tcp = Tcp(allowed=False)
    tcp.send(b"GET /?id=p&lat=1&lon=2 HTTP/1.1\r\n\r\n")
    assert tcp.written() == response(403, "ERR unknown_device\n")
    assert tcp.transport.disconnecting


# --- UDP ------------------------------------------------------------------------------------


class RecordingUdpTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))


class Udp:
    def __init__(self, allowed: bool = True, **overrides: Any) -> None:
        self.sink = FakeSink()
        self.sessions = FakeSessions(allowed)
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1714564800)
        context = driver_context(listener("udp", **overrides), sink=self.sink, sessions=self.sessions,
                                 reactor=self.reactor)
        self.protocol = driver.udp_protocol(context)
        self.transport = RecordingUdpTransport()
        self.protocol.transport = self.transport


def test_udp_datagram_is_acknowledged_to_its_sender_after_store():
    udp = Udp()
    udp.protocol.datagramReceived(LINE, ("10.1.1.1", 5000))
    ((events, stored),) = udp.sink.delivered
    assert events[0].imei == "123456789012345"
    assert udp.transport.sent == []
    stored.callback(None)
    assert udp.transport.sent == [(b"OK 1\n", ("10.1.1.1", 5000))]
    assert [peer.imei for peer in udp.sessions.attached] == ["123456789012345"]


def test_udp_datagram_of_two_devices_and_a_bad_line():
    udp = Udp()
    udp.protocol.datagramReceived(b"id=a,lat=1,lon=2\nid=b,lat=3,lon=4\nid=c,lat=3,lon=400\n",
                                  ("10.1.1.2", 6000))
    assert [events[0].imei for events, _ in udp.sink.delivered] == ["a", "b"]
    for _, stored in udp.sink.delivered:
        stored.callback(None)
    assert sorted(data for data, _ in udp.transport.sent) == [b"ERR lon_out_of_range\n", b"OK 1\n", b"OK 1\n"]


def test_udp_rejection_and_ack_switch():
    udp = Udp(ack=False)
    before = rejected("missing_id")
    udp.protocol.datagramReceived(b"lat=1,lon=2", ("10.1.1.3", 7000))
    udp.protocol.datagramReceived(b"id=z,lat=1,lon=2", ("10.1.1.3", 7000))
    udp.sink.delivered[0][1].callback(None)
    assert udp.transport.sent == []
    assert rejected("missing_id") == before + 1
