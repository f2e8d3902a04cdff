"""The GV50 driver through waygps.drivers.base on Twisted fakes: StringTransport for TCP, a
recording transport for UDP, a sink whose Deferreds the test fires (or fails) by hand."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.plugin import getPlugins

from gv50_vectors import FRAMES, X3
from waygps.commands.model import Command
from waygps.config import ListenerConfig
from waygps.drivers.base import DriverContext
from waygps.drivers.gv50.driver import driver
from waygps.events import CommandAck, Heartbeat, Position
from waygps.testing import FakeSessions as Sessions, HeldSink
from waygps.interfaces import IDriver

T0 = 1_764_000_000.0
IMEI = "862894020180553"
S1 = FRAMES["S1"]
HBD = b"+ACK:GTHBD,1A0401,862894020180553,,20100214093254,11F0$"


def make_context(transport: str = "tcp", allowed: bool = True, ack: bool = True, **options: Any) -> DriverContext:
    reactor = MemoryReactorClock()
    reactor.advance(T0)
    listener = ListenerConfig(driver="gv50", port=0, transport=transport, name=f"gv50-{transport}", ack=ack,
                              options={**driver.options, **options})
    return DriverContext(listener=listener, sink=HeldSink(), sessions=Sessions(allowed), reactor=reactor)


def connect(context: DriverContext) -> tuple[Any, StringTransport]:
    protocol = driver.tcp_factory(context).buildProtocol(IPv4Address("TCP", "10.1.2.3", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 40000))
    protocol.makeConnection(transport)
    return protocol, transport


def test_the_plugin_is_found_with_its_options() -> None:
    found = {d.name: d for d in getPlugins(IDriver)}
    assert found["gv50"] is driver
    assert driver.transports == frozenset({"tcp", "udp"})
    assert driver.options == {"max_frame_bytes": 4096, "password": "gv50", "heartbeat_minutes": 5}


def test_sack_is_written_only_after_the_store_fired() -> None:
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(S1)
    sink = context.sink
    assert context.sessions.asked == [IMEI] and protocol.imei == IMEI
    assert len(sink.batches) == 1 and isinstance(sink.batches[0][0][0], Position)
    assert transport.value() == b""  # not stored yet: no acknowledgement
    sink.store(0)
    assert transport.value() == b"+SACK:132B$"


def test_acknowledgements_keep_report_order() -> None:
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(S1 + S1.replace(b"132B", b"132C") + S1.replace(b"132B", b"132D"))
    sink = context.sink
    sink.store(2)
    sink.store(1)
    assert transport.value() == b""  # the first report is not stored yet
    sink.store(0)
    assert transport.value() == b"+SACK:132B$+SACK:132C$+SACK:132D$"


def test_no_sack_when_storing_failed() -> None:
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(S1)
    protocol.dataReceived(S1.replace(b"+RESP:", b"+BUFF:").replace(b"132B", b"132C"))
    context.sink.fail(0)
    assert transport.value() == b""
    context.sink.store(1)
    assert transport.value() == b"+SACK:132C$"
    assert transport.connected and not transport.disconnecting


def test_listener_with_acknowledgements_off_sends_no_sack() -> None:
    context = make_context(ack=False)
    protocol, transport = connect(context)
    protocol.dataReceived(S1)
    context.sink.store(0)
    assert transport.value() == b""


def test_heartbeat_is_answered_at_once() -> None:
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(HBD)
    assert transport.value() == b"+SACK:GTHBD,1A0401,11F0$"
    assert context.sink.batches[0][0] == [Heartbeat(imei=IMEI, protocol="gv50", server_time=datetime.fromtimestamp(
        T0, timezone.utc))]
    context.sink.store(0)
    assert transport.value() == b"+SACK:GTHBD,1A0401,11F0$"  # nothing more


def test_unknown_device_is_refused_and_nothing_acknowledged() -> None:
    context = make_context(allowed=False)
    protocol, transport = connect(context)
    protocol.dataReceived(HBD + S1)
    assert transport.value() == b"" and context.sink.batches == []
    assert transport.disconnecting


def test_device_in_hex_mode_is_disconnected() -> None:
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(X3)
    assert transport.disconnecting and context.sink.batches == []


def test_another_imei_on_the_connection_is_rejected() -> None:
    before = REGISTRY.get_sample_value("waygps_frames_rejected_total", {"driver": "gv50", "reason": "imei_mismatch"})
    context = make_context()
    protocol, transport = connect(context)
    protocol.dataReceived(S1 + FRAMES["S8"])
    after = REGISTRY.get_sample_value("waygps_frames_rejected_total", {"driver": "gv50", "reason": "imei_mismatch"})
    assert (after or 0) - (before or 0) == 1
    assert len(context.sink.batches) == 1 and protocol.imei == IMEI


def test_luhn_failure_is_logged_and_counted_and_the_report_kept() -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    labels = {"driver": "gv50", "reason": "imei_luhn"}
    before = REGISTRY.get_sample_value("waygps_frames_flagged_total", labels) or 0
    try:
        context = make_context()
        protocol, transport = connect(context)
        protocol.dataReceived(FRAMES["S12"])
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert REGISTRY.get_sample_value("waygps_frames_flagged_total", labels) == before + 1
    assert any(e.get("reason") == "imei_luhn" and e.get("imei") == "135790246811220" for e in events)
    (stored,) = context.sink.batches
    assert [type(e).__name__ for e in stored[0]] == ["Position", "Alarm"]
    context.sink.store(0)
    assert transport.value() == b"+SACK:11F0$"


def test_command_written_and_its_acknowledgement_matched() -> None:
    context = make_context(password="fleet")
    protocol, transport = connect(context)
    protocol.dataReceived(S1)
    context.sink.store(0)
    transport.clear()
    written = protocol.send_command(Command(id="k9", imei=IMEI, type="block", serial="00A1"))
    assert written == transport.value() == b"AT+GTOUT=fleet,1,,,0,0,0,0,0,0,0,,,,,,,00A1$"
    transport.clear()
    protocol.dataReceived(f"+ACK:GTOUT,060228,{IMEI},,00A1,20090214093254,11F1$".encode())
    (ack,) = context.sink.batches[1][0]
    assert isinstance(ack, CommandAck) and (ack.command_id, ack.command_type, ack.serial) == ("k9", "block", "00A1")
    assert transport.value() == b""
    context.sink.store(1)
    assert transport.value() == b"+SACK:11F1$"


class DatagramTransport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, address: Any) -> None:
        self.written.append((data, address))


def test_udp_replies_go_to_the_sender_after_storing() -> None:
    context = make_context("udp")
    protocol = driver.udp_protocol(context)
    transport = DatagramTransport()
    protocol.transport = transport
    sender = ("10.9.8.7", 5004)
    protocol.datagramReceived(HBD, sender)
    assert transport.written == [(b"+SACK:GTHBD,1A0401,11F0$", sender)]
    protocol.datagramReceived(S1, sender)
    assert len(transport.written) == 1
    context.sink.store(1)
    assert transport.written[-1] == (b"+SACK:132B$", sender)
    protocol.datagramReceived(S1.replace(b"132B", b"132C"), sender)
    context.sink.fail(2)
    assert len(transport.written) == 2
    assert protocol.peers[IMEI].send_command(Command(id="r", imei=IMEI, type="reboot", serial="0001")) == (
        b"AT+GTRTO=gv50,3,,,,,,0001$")
    assert transport.written[-1] == (b"AT+GTRTO=gv50,3,,,,,,0001$", sender)


def test_offline_decode_of_a_capture() -> None:
    now = datetime(2026, 5, 20, tzinfo=timezone.utc)
    one_device = [FRAMES[n].replace(FRAMES[n].split(b",")[2], IMEI.encode()) for n in ("S1", "S3", "X1", "S33")]
    capture = b"\r\n".join(one_device + [FRAMES["S8"], b""])  # a capture is one connection: one device
    out = driver.decode(capture, now)
    # X1 has no count but a valid fix: kept, flagged twice (no count, block found by shape).
    assert [type(x).__name__ for x in out] == ["Position", "Position", "Flagged", "Flagged", "Position",
                                              "Heartbeat", "Rejected"]
    assert (out[2].reason, out[3].reason, out[6].reason) == ("bad_count", "decoded_by_shape", "imei_mismatch")
    assert (out[4].latitude, out[4].longitude) == (38.735379, -90.366478)
    assert [p.latitude for p in out[:2]] == [-17.720434, -17.662410] and out[1].buffered
    udp = driver.decode(FRAMES["S8"], now, transport="udp")  # a datagram needs no terminator
    assert [type(x).__name__ for x in udp] == ["Position"] and udp[0].imei == "869606020188383"
