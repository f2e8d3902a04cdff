"""The Teltonika driver through waygps.drivers.base on Twisted fakes: StringTransport for TCP, a
recording transport for UDP, a sink whose Deferreds the test fires by hand."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from teltonika_vectors import IMEI, tv
from waygps.commands.model import Command
from waygps.config import ListenerConfig
from waygps.drivers.base import DriverContext
from waygps.drivers.teltonika.commands import TYPE_RESPONSE, encode_codec12
from waygps.drivers.teltonika.driver import driver
from waygps.events import CommandAck, Position
from waygps.testing import FakeSessions as Sessions, HeldSink

T0 = 1_764_000_000.0


def make_context(transport: str = "tcp", allowed: bool = True, **options: Any) -> DriverContext:
    reactor = MemoryReactorClock()
    reactor.advance(T0)
    listener = ListenerConfig(
        driver="teltonika",
        port=0,
        transport=transport,
        name=f"teltonika-{transport}",
        options={**driver.options, **options},
    )
    return DriverContext(listener=listener, sink=HeldSink(), sessions=Sessions(allowed), reactor=reactor)


def tcp(**options: Any) -> tuple[Any, StringTransport, DriverContext]:
    ctx = make_context(**options)
    factory = driver.tcp_factory(ctx)
    address = IPv4Address("TCP", "10.1.2.3", 40000)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport, ctx


def sent(transport: StringTransport) -> bytes:
    data = transport.value()
    transport.clear()
    return data


def rejected(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("waygps_frames_rejected_total", {"driver": "teltonika", "reason": reason})
        or 0.0
    )


def test_ack_only_after_the_store_fires() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01"))
    assert sent(transport) == b"\x01"
    protocol.dataReceived(tv("TV-02"))
    assert len(ctx.sink.batches) == 1 and isinstance(ctx.sink.batches[0][0][0], Position)
    assert sent(transport) == b""  # not stored yet: nothing written
    ctx.sink.store(0)
    assert sent(transport) == b"\x00\x00\x00\x01"


def test_failed_store_sends_nothing_and_the_resent_packet_keeps_its_ids() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01") + tv("TV-04"))
    sent(transport)
    ctx.sink.fail(0)
    assert sent(transport) == b""
    protocol.dataReceived(tv("TV-04"))  # the device sends it again
    ctx.sink.store(1)
    assert sent(transport) == b"\x00\x00\x00\x02"
    first = [e.document_id for e in ctx.sink.batches[0][0]]
    second = [e.document_id for e in ctx.sink.batches[1][0]]
    assert first == second and len(set(first)) == 2


def test_acks_go_out_in_packet_order() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01") + tv("TV-02") + tv("TV-04"))
    sent(transport)
    ctx.sink.store(1)
    assert sent(transport) == b""
    ctx.sink.store(0)
    assert sent(transport) == b"\x00\x00\x00\x01\x00\x00\x00\x02"


def test_unknown_device_is_answered_00_and_closed() -> None:
    protocol, transport, ctx = tcp(allowed=False)
    protocol.dataReceived(tv("TV-01") + tv("TV-02"))
    assert sent(transport) == b"\x00"
    assert transport.disconnecting and ctx.sink.batches == []


def test_malformed_imei_is_answered_00_closed_and_counted() -> None:
    before = rejected("bad_imei")
    protocol, transport, ctx = tcp()
    protocol.dataReceived(b"\x00\x0512345")
    assert sent(transport) == b"\x00" and transport.disconnecting
    assert rejected("bad_imei") == before + 1


def test_bad_crc_is_counted_not_stored_not_answered() -> None:
    before = rejected("bad_crc")
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01"))
    sent(transport)
    bad = bytearray(tv("TV-03"))
    bad[30] ^= 0x40
    protocol.dataReceived(bytes(bad))
    assert sent(transport) == b"" and ctx.sink.batches == [] and not transport.disconnecting
    assert rejected("bad_crc") == before + 1


def test_garbage_closes_the_connection() -> None:
    protocol, transport, ctx = tcp(max_bad_frames=2)
    protocol.dataReceived(tv("TV-01"))
    bad = bytearray(tv("TV-03"))
    bad[-1] ^= 1
    protocol.dataReceived(bytes(bad))
    assert not transport.disconnecting
    protocol.dataReceived(bytes(bad))
    assert transport.disconnecting


def test_keepalive_is_not_answered() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01"))
    sent(transport)
    protocol.dataReceived(b"\xff")
    assert sent(transport) == b"" and ctx.sink.batches == [] and not transport.disconnecting


def test_command_written_and_its_response_matched() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01"))
    sent(transport)
    data = protocol.send_command(Command(id="cmd-1", imei=IMEI, type="block"))
    assert data == tv("TV-09") and sent(transport) == tv("TV-09")
    protocol.dataReceived(encode_codec12(b"DOUT1:ON Timeout:INFINITY", TYPE_RESPONSE))
    events, d = ctx.sink.batches[0]
    assert events == [
        CommandAck(
            imei=IMEI,
            protocol="teltonika",
            server_time=events[0].server_time,
            success=True,
            response="DOUT1:ON Timeout:INFINITY",
            command_id="cmd-1",
            command_type="block",
        )
    ]
    ctx.sink.store(0)
    assert sent(transport) == b""  # a command response gets no count answer


def test_block_output_listener_option_reaches_the_codec() -> None:
    protocol, transport, ctx = tcp(block_output=2)
    protocol.dataReceived(tv("TV-01"))
    assert protocol.send_command(Command(id="c", imei=IMEI, type="block")) == encode_codec12(b"setdigout ?1")


class DatagramTransport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.written.append((data, address))


def udp(allowed: bool = True) -> tuple[Any, DatagramTransport, DriverContext]:
    ctx = make_context("udp", allowed)
    protocol = driver.udp_protocol(ctx)
    transport = DatagramTransport()
    protocol.makeConnection(transport)
    return protocol, transport, ctx


ADDRESS = ("10.9.8.7", 5555)


def test_udp_ack_after_store() -> None:
    protocol, transport, ctx = udp()
    protocol.datagramReceived(tv("TV-12"), ADDRESS)
    ((events, _),) = ctx.sink.batches
    assert [e.imei for e in events] == ["352093086403655"] and transport.written == []
    ctx.sink.store(0)
    assert transport.written == [(bytes.fromhex("0005CAFE010501"), ADDRESS)]
    assert ctx.sessions.attached[0].imei == "352093086403655"


def test_udp_failed_store_sends_nothing() -> None:
    protocol, transport, ctx = udp()
    protocol.datagramReceived(tv("TV-13"), ADDRESS)
    ctx.sink.fail(0)
    assert transport.written == []


def test_udp_invalid_imei_is_dropped_and_counted() -> None:
    before = rejected("bad_imei")
    protocol, transport, ctx = udp()
    datagram = bytearray(tv("TV-12"))
    datagram[10] = ord("x")
    protocol.datagramReceived(bytes(datagram), ADDRESS)
    assert ctx.sink.batches == [] and transport.written == [] and ctx.sessions.attached == []
    assert rejected("bad_imei") == before + 1


def test_udp_unknown_device_is_dropped_and_counted() -> None:
    labels = {"listener": "teltonika-udp", "reason": "unknown_device"}
    before = REGISTRY.get_sample_value("waygps_connections_refused_total", labels) or 0.0
    protocol, transport, ctx = udp(allowed=False)
    protocol.datagramReceived(tv("TV-12"), ADDRESS)
    assert ctx.sink.batches == [] and transport.written == [] and ctx.sessions.attached == []
    assert REGISTRY.get_sample_value("waygps_connections_refused_total", labels) == before + 1


def test_connection_lost_detaches() -> None:
    protocol, transport, ctx = tcp()
    protocol.dataReceived(tv("TV-01"))
    protocol.connectionLost(Failure(ConnectionDone()))
    assert ctx.sessions.detached == ["closed by device"]


def test_decode_helper_of_the_driver() -> None:
    from teltonika_vectors import NOW

    events = driver.decode(tv("TV-01") + tv("TV-04"), NOW, "tcp")
    assert [type(e) for e in events] == [Position, Position]
    assert [type(e) for e in driver.decode(tv("TV-14"), NOW, "udp")] == [Position]
