"""Tests of the binary example driver, written only against what WayGPS installs (waygps.testing)."""

from __future__ import annotations

import time

import pytest
import pytest_twisted

from waygps.actions import Close, Identified, Rejected, Send, Store
from waygps.events import Heartbeat
from waygps.testing import NOW, actions_in_every_chunking, run_codec
from waygps_binary_example import protocol as wb
from waygps_binary_example.codec import WbCodec

IMEI = "123456789012345"
LOGIN = wb.frame(wb.LOGIN, IMEI.encode(), 1)
T = int(NOW.timestamp()) - 30


def position(serial: int, when: int = T, lat: float = -23.5) -> bytes:
    return wb.frame(wb.POSITION, wb.position_body(when, lat, -46.6, 42.5, 90, ignition=True), serial)


def test_login_position_heartbeat_in_any_chunking() -> None:
    actions = actions_in_every_chunking(WbCodec, LOGIN + position(2) + wb.frame(wb.HEARTBEAT, b"", 3))
    assert [type(a) for a in actions] == [Identified, Store, Send, Store]
    assert actions[0].accept == wb.ack(wb.LOGIN, 1) and actions[1].ack == wb.ack(wb.POSITION, 2)
    fix = actions[1].events[0]
    assert (fix.latitude, fix.speed, fix.course, fix.ignition, fix.valid) == (-23.5, 42.5, 90.0, True, True)
    assert isinstance(actions[3].events[0], Heartbeat)


def test_a_resent_frame_maps_to_the_same_document() -> None:
    first = run_codec(WbCodec(), LOGIN + position(2))[1].events[0]
    again = run_codec(WbCodec(), LOGIN + position(2))[1].events[0]
    assert first.document_id == again.document_id


def test_bad_crc_garbage_and_order() -> None:
    broken = bytearray(position(2))
    broken[-1] ^= 0xFF
    actions = run_codec(WbCodec(), [position(1), LOGIN, bytes(broken), b"\x00junk" + position(3)])
    reasons = [a.reason for a in actions if isinstance(a, Rejected)]
    assert reasons == ["not_logged_in", "bad_crc", "noise"]
    assert sum(isinstance(a, Store) for a in actions) == 1


def test_an_implausible_time_falls_back_to_the_server_time() -> None:
    fix = run_codec(WbCodec(), LOGIN + position(2, when=0))[1].events[0]
    assert fix.device_time == NOW and fix.attributes["time_rejected"] == "default_date" and not fix.valid


def test_a_garbage_stream_is_closed_and_memory_stays_bounded() -> None:
    codec = WbCodec()
    actions = run_codec(codec, [b"\xff" * 600] * 3)
    assert isinstance(actions[-1], Close) and codec.framer.buffered <= wb.MAX_FRAME


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_end_to_end(waygps_server) -> None:
    server = yield waygps_server("wbin")
    device = yield server.connect()
    device.send(LOGIN)
    yield device.read_until(wb.ack(wb.LOGIN, 1))
    now = int(time.time()) - 5
    device.send(position(7, when=now))
    received = yield device.read_until(wb.ack(wb.LOGIN, 1) + wb.ack(wb.POSITION, 7))
    assert received.endswith(wb.ack(wb.POSITION, 7))
    stored = yield server.positions(IMEI)
    assert stored[0]["latitude"] == -23.5 and stored[0]["ignicao"] is True
    yield device.close()
