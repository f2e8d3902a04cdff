"""Tests of the example driver, written only against what WayGPS installs (waygps.testing)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from waygps.actions import Close, Identified, Rejected, Send, Store
from waygps.drivers import find_drivers
from waygps.events import Alarm, Heartbeat, Position
from waygps.testing import NOW, HeldSink, actions_in_every_chunking, driver_context, listener_config, run_codec
from waygps_example_driver.codec import SemicolonCodec, SemicolonDatagramCodec

IMEI = "123456789012345"
LINE = b"123456789012345;-23.5;-46.6;42;20260115115900\r\n"


def test_a_report_in_any_chunking() -> None:
    actions = actions_in_every_chunking(SemicolonCodec, LINE + b"123456789012345;HB\n")
    assert [type(a) for a in actions] == [Identified, Store, Send, Store]
    position = actions[1].events[0]
    assert isinstance(position, Position) and (position.latitude, position.speed) == (-23.5, 42.0)
    assert position.device_time.isoformat() == "2026-01-15T11:59:00+00:00" and actions[1].ack == b"OK\n"
    assert isinstance(actions[3].events[0], Heartbeat) and actions[2].data == b"HB\n"


def test_sos_raises_an_alarm_tied_to_its_position() -> None:
    store = run_codec(SemicolonCodec(), b"123456789012345;1;2;3;20260115115900;SOS\n")[1]
    position, alarm = store.events
    assert isinstance(alarm, Alarm) and alarm.position_id == position.document_id


def test_bad_input_is_rejected_and_garbage_closes() -> None:
    codec = SemicolonCodec(max_line=64)
    actions = run_codec(codec, [b"nonsense\n", b"123456789012345;91;0;0\n", b"x" * 100 + b"\n"])
    assert [(type(a), getattr(a, "reason", None)) for a in actions] == [
        (Rejected, "malformed"), (Rejected, "out_of_range"), (Rejected, "line_too_long")]
    actions = run_codec(codec, [b"y" * 300])
    assert isinstance(actions[-1], Close) and codec.receive(LINE, NOW) == []
    assert codec.framer.buffered <= 64


def test_one_device_per_connection() -> None:
    actions = run_codec(SemicolonCodec(), LINE + b"999999999999999;1;2;3\n")
    assert isinstance(actions[-1], Rejected) and actions[-1].reason == "imei_mismatch"


def test_datagram_lines() -> None:
    actions = SemicolonDatagramCodec().receive_datagram(LINE + b"123456789012345;HB", NOW)
    assert [type(a) for a in actions] == [Identified, Store, Store]


def test_acknowledged_only_once_stored() -> None:
    driver = find_drivers()["example"]
    sink = HeldSink()
    context = driver_context(listener_config("example"), sink=sink)
    protocol = driver.tcp_factory(context).buildProtocol(IPv4Address("TCP", "10.0.0.1", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(LINE)
    assert transport.value() == b""  # stored? not yet
    sink.store(0)
    assert transport.value() == b"OK\n"


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_end_to_end_over_tcp_and_udp(waygps_server) -> None:
    tcp = yield waygps_server("example")
    answer = yield tcp.exchange(LINE, until=b"OK\n")
    assert answer == b"OK\n"
    stored = yield tcp.positions(IMEI)
    assert stored[0]["latitude"] == -23.5 and stored[0]["speed"] == 42.0
    udp = yield waygps_server("example", transport="udp")
    reply = yield udp.datagram(b"123456789012345;-23.6;-46.7;10;20260115120000\n")
    assert reply == b"OK\n"
    both = yield udp.positions(IMEI, count=2)
    assert sorted(doc["latitude"] for doc in both) == [-23.6, -23.5]
