"""The device models against the drivers' real codecs: valid frames, acknowledgements, re-sends, commands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulate_support import T0, model, positions, replies, stored, when
from waygps.commands.model import Command
from waygps.drivers.generic.codec import GenericDatagramCodec, GenericStreamCodec, Settings as GenericSettings
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
from waygps.drivers.teltonika.framing import luhn_ok
from waygps.events import CommandAck, Heartbeat
from waygps.simulate.device import imei_of, luhn_digit
from waygps.simulate.stats import LatencyHistogram


def test_imeis_are_fifteen_digits_with_their_luhn_check_digit() -> None:
    imeis = {imei_of(n) for n in range(1000)}
    assert len(imeis) == 1000
    for imei in imeis:
        assert len(imei) == 15 and imei.isdigit() and luhn_ok(imei)  # the driver's own check
    assert imei_of(7) == "350000000000071"  # 35000000000007: 7*2 -> 5, 5*2 -> 1, + 3 = 9 -> check digit 1
    assert luhn_digit("86289402018055") == "3"  # a real GV300 IMEI: 862894020180553


# --- GV50 -----------------------------------------------------------------------------------------


def test_gv50_reports_heartbeats_and_ignition_changes_decode_with_the_driver() -> None:
    device = model("gv50", heartbeat=60.0)
    codec = Gv50StreamCodec()
    device.connected(T0)
    seen_events = set()
    now = T0
    for n in range(1, 1500):  # about 4 hours at one report per 10 s
        now = T0 + 10 * n
        [frame] = device.report(now)
        actions = codec.receive(frame, when(now))
        [position] = positions(actions)
        assert position.imei == device.imei and position.valid
        assert position.device_time == when(now)
        seen_events.add(position.event)
        assert position.ignition is not None
        assert device.receive(replies(actions), now) == []
    assert {"GTFRI", "GTIGN", "GTIGF"} <= seen_events
    assert device.stats.sent == device.stats.acked == 1499 and device.idle
    [beat] = device.heartbeat(now + 60)
    actions = codec.receive(beat, when(now + 60))
    assert any(isinstance(e, Heartbeat) for e in stored(actions))
    device.receive(replies(actions), now + 60)
    assert device.stats.heartbeat_acks == 1 and device.stats.unexpected == 0


def test_gv50_report_without_sack_is_sent_again_as_buff_with_the_same_count_and_stored_once() -> None:
    device = model("gv50", ack_timeout=20.0)
    codec = Gv50StreamCodec()
    device.connected(T0)
    [frame] = device.report(T0 + 1)
    first = positions(codec.receive(frame, when(T0 + 1)))[0]
    assert device.expired(T0 + 20) == []  # not yet
    [again] = device.expired(T0 + 21.5)
    assert again.startswith(b"+BUFF:GTFRI,") and again[6:] == frame[6:]
    actions = codec.receive(again, when(T0 + 22))
    [replay] = positions(actions)
    assert replay.buffered and replay.document_id == first.document_id  # the store keeps it once
    device.receive(replies(actions), T0 + 22)
    assert device.idle and device.stats.resent == 1 and device.stats.acked == 1


def test_gv50_unacknowledged_reports_are_replayed_after_a_reconnect() -> None:
    device = model("gv50")
    device.connected(T0)
    frames = [device.report(T0 + n)[0] for n in range(1, 4)]
    device.disconnected(T0 + 5)
    assert device.expired(T0 + 60) == []  # nothing goes out while the link is down
    replayed = device.connected(T0 + 70)
    assert [f[6:] for f in replayed] == [f[6:] for f in frames]
    assert all(f.startswith(b"+BUFF:") for f in replayed)


def test_gv50_answers_a_block_command_with_its_serial_and_shows_output_1() -> None:
    device = model("gv50")
    codec = Gv50StreamCodec()
    device.connected(T0)
    codec.receive(device.report(T0 + 1)[0], when(T0 + 1))
    command = Command(id="c1", imei=device.imei, type="block", serial="00A1")
    [answer] = device.receive(codec.encode_command(command, when(T0 + 2)), T0 + 2)
    assert answer.startswith(b"+ACK:GTOUT,") and b",00A1," in answer
    [ack] = [e for e in stored(codec.receive(answer, when(T0 + 2))) if isinstance(e, CommandAck)]
    assert ack.command_id == "c1" and ack.success and ack.command_type == "block"
    assert device.output is True and device.stats.command_answers == 1
    [frame] = device.report(T0 + 10)
    [position] = positions(codec.receive(frame, when(T0 + 10)))
    if position.event == "GTFRI":  # the device status shows output 1 on
        assert frame.split(b",")[-6].endswith(b"01")
    unblock = Command(id="c2", imei=device.imei, type="unblock", serial="00A2")
    device.receive(codec.encode_command(unblock, when(T0 + 11)), T0 + 11)
    assert device.output is False


def test_gv50_ignores_a_command_with_a_wrong_password() -> None:
    device = model("gv50", password="secret")
    codec = Gv50StreamCodec()
    command = Command(id="c1", imei=device.imei, type="block", serial="00A1")
    assert device.receive(codec.encode_command(command, when(T0)), T0) == []
    assert device.stats.commands == 1 and device.stats.command_answers == 0 and device.output is False


def test_gv50_over_udp_one_datagram_per_report() -> None:
    device = model("gv50", udp=True)
    codec = Gv50DatagramCodec()
    device.connected(T0)
    [datagram] = device.report(T0 + 1)
    actions = codec.receive_datagram(datagram, when(T0 + 1))
    assert len(positions(actions)) == 1
    device.receive(replies(actions), T0 + 1)
    assert device.idle


# --- Teltonika --------------------------------------------------------------------------------------


def test_teltonika_handshake_packets_and_one_packet_in_flight() -> None:
    device = model("teltonika")
    codec = TeltonikaStreamCodec()
    [hello] = device.connected(T0)
    answer = replies(codec.receive(hello, when(T0)))
    assert answer == b"\x01"
    assert device.receive(answer, T0) == []
    [packet] = device.report(T0 + 1)
    assert device.report(T0 + 2) == [] and device.report(T0 + 3) == []  # wait for the count
    actions = codec.receive(packet, when(T0 + 1))
    [position] = positions(actions)
    assert position.imei == device.imei and position.attributes["ignition"] in (True, False)
    [second] = device.receive(replies(actions), T0 + 4)  # the count frees the next packet: both waiting
    assert len(positions(codec.receive(second, when(T0 + 4)))) == 2
    assert device.stats.sent == 3 and device.stats.acked == 1


def test_teltonika_packet_without_count_is_sent_again_byte_for_byte_also_after_reconnect() -> None:
    device = model("teltonika", ack_timeout=10.0)
    codec = TeltonikaStreamCodec()
    device.receive(replies(codec.receive(device.connected(T0)[0], when(T0))), T0)
    [packet] = device.report(T0 + 1)
    keys = [p.key for p in positions(codec.receive(packet, when(T0 + 1)))]
    assert device.expired(T0 + 11.5) == [packet]
    device.disconnected(T0 + 12)
    fresh = TeltonikaStreamCodec()
    [hello] = device.connected(T0 + 20)
    replay = device.receive(replies(fresh.receive(hello, when(T0 + 20))), T0 + 20)
    assert replay == [packet]
    actions = fresh.receive(packet, when(T0 + 20))
    assert [p.key for p in positions(actions)] == keys
    device.receive(replies(actions), T0 + 20)
    assert device.idle and device.stats.resent == 2


def test_teltonika_answers_setdigout_with_a_codec_12_response_the_driver_confirms() -> None:
    device = model("teltonika")
    codec = TeltonikaStreamCodec()
    device.receive(replies(codec.receive(device.connected(T0)[0], when(T0))), T0)
    block = Command(id="c1", imei=device.imei, type="block")
    [answer] = device.receive(codec.encode_command(block, when(T0 + 1)), T0 + 1)
    assert answer == bytes.fromhex("00000000000000210C010600000019444F5554313A4F4E2054696D656F75743A494E46494E4954"
                                   "5901000002CD")  # the documented response to setdigout 1
    [ack] = [e for e in stored(codec.receive(answer, when(T0 + 1))) if isinstance(e, CommandAck)]
    assert ack.success and ack.command_id == "c1" and device.output is True
    [packet] = device.report(T0 + 2)
    [position] = positions(codec.receive(packet, when(T0 + 2)))
    assert position.attributes["dout1"] is True


def test_teltonika_keepalive_byte_and_udp_datagrams() -> None:
    device = model("teltonika")
    codec = TeltonikaStreamCodec()
    device.receive(replies(codec.receive(device.connected(T0)[0], when(T0))), T0)
    assert device.heartbeat(T0 + 60) == [b"\xff"]
    assert positions(codec.receive(b"\xff", when(T0 + 60))) == []
    [packet] = device.report(T0 + 61)  # the link goes on after the keep-alive
    assert len(positions(codec.receive(packet, when(T0 + 61)))) == 1

    udp = model("teltonika", udp=True)
    datagrams = TeltonikaDatagramCodec()
    assert udp.connected(T0) == [] and udp.heartbeat(T0 + 60) == []
    [datagram] = udp.report(T0 + 1)
    actions = datagrams.receive_datagram(datagram, when(T0 + 1))
    assert len(positions(actions)) == 1
    udp.receive(replies(actions), T0 + 1)
    assert udp.idle and udp.stats.unexpected == 0


# --- generic ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("udp", [False, True])
def test_generic_json_lines_are_stored_and_answered(udp: bool) -> None:
    device = model("generic", udp=udp)
    settings = GenericSettings()
    device.connected(T0)
    codec = GenericDatagramCodec(settings) if udp else GenericStreamCodec(settings)
    for n in range(1, 200):
        now = T0 + 30 * n
        [line] = device.report(now)
        actions = codec.receive_datagram(line, when(now)) if udp else codec.receive(line, when(now))
        [position] = positions(actions)
        assert position.imei == device.imei and position.device_time == when(now)
        device.receive(replies(actions), now)
    assert device.stats.acked == 199 and device.idle and device.stats.unexpected == 0


def test_generic_resends_its_line_until_answered_and_records_commands() -> None:
    device = model("generic", ack_timeout=5.0)
    codec = GenericStreamCodec(GenericSettings())
    device.connected(T0)
    [line] = device.report(T0 + 1)
    assert device.report(T0 + 2) == []  # one line in flight
    [again] = device.expired(T0 + 7)
    assert again == line
    first = positions(codec.receive(line, when(T0 + 7)))[0]
    actions = codec.receive(again, when(T0 + 7))
    assert positions(actions)[0].document_id == first.document_id
    [second] = device.receive(replies(actions), T0 + 7)
    assert second != line
    command = Command(id="c1", imei=device.imei, type="custom", params={"text": "reboot now"})
    assert device.receive(codec.encode_command(command, when(T0 + 8)), T0 + 8) == []
    assert device.commands == ["reboot now"] and device.stats.commands == 1


# --- statistics ----------------------------------------------------------------------------------------


def test_latency_percentiles_are_within_a_bucket() -> None:
    histogram = LatencyHistogram()
    for n in range(1, 1001):
        histogram.add(n / 1000)  # 1 ms .. 1 s
    assert histogram.percentile(0.5) == pytest.approx(0.5, rel=0.03)
    assert histogram.percentile(0.99) == pytest.approx(0.99, rel=0.03)
    assert LatencyHistogram().percentile(0.5) is None


def test_time_is_an_argument_of_the_models() -> None:
    device = model("gv50")
    device.connected(T0)
    [frame] = device.report(T0 + timedelta(days=1).total_seconds())
    assert b"20260922" in frame  # the day after T0 (2026-09-21), from the given time only
