"""The TCP stream codec: handshake outcomes, framing, bad input, limits, alarms (no reactor)."""

from __future__ import annotations

from typing import Any

import bson
import pytest

from teltonika_vectors import IMEI, NOW, tv
from waygps.actions import Close, Identified, Rejected, Store
from waygps.drivers.teltonika.avl import CODEC_8, CODEC_8E, encode_data, make_record
from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
from waygps.documents import position_document
from waygps.drivers.teltonika.framing import frame, imei_frame
from waygps.events import Alarm, Position


def identified(**options: Any) -> TeltonikaStreamCodec:
    codec = TeltonikaStreamCodec(options)
    assert isinstance(codec.receive(tv("TV-01"), NOW)[0], Identified)
    return codec


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


# --- the stream scenarios of teltonika-protocol.md §7 ---------------------------------------------------


def test_handshake_then_packet_one_byte_per_read() -> None:
    codec = TeltonikaStreamCodec()
    stream = tv("TV-01") + tv("TV-02")
    got: list[Any] = []
    for i in range(len(stream)):
        actions = codec.receive(stream[i : i + 1], NOW)
        if i < len(stream) - 1 and i != len(tv("TV-01")) - 1:
            assert actions == []
        got.extend(actions)
    assert kinds(got) == ["Identified", "Store"]
    assert got[0].accept == b"\x01" and got[1].ack == b"\x00\x00\x00\x01"


def test_two_packets_in_one_read() -> None:
    actions = identified().receive(tv("TV-02") + tv("TV-03"), NOW)
    assert kinds(actions) == ["Store", "Store"]
    assert [a.ack for a in actions] == [b"\x00\x00\x00\x01"] * 2
    assert [len(a.events) for a in actions] == [1, 1]


def test_packet_and_a_half_then_the_rest() -> None:
    codec = identified()
    first = codec.receive(tv("TV-03") + tv("TV-04")[:10], NOW)
    assert [a.ack for a in first] == [b"\x00\x00\x00\x01"]
    assert codec.buffered == 10
    second = codec.receive(tv("TV-04")[10:], NOW)
    assert [a.ack for a in second] == [b"\x00\x00\x00\x02"] and len(second[0].events) == 2
    assert codec.buffered == 0


def test_keepalive_between_packets_is_ignored() -> None:
    codec = identified()
    actions = codec.receive(tv("TV-02") + b"\xff", NOW)
    assert kinds(actions) == ["Store"]
    assert codec.receive(b"\xff", NOW) == []
    assert kinds(codec.receive(b"\xff" + tv("TV-03"), NOW)) == ["Store"]


def test_changed_last_byte_fails_crc_nothing_stored_no_ack() -> None:
    bad = bytearray(tv("TV-02"))
    bad[-1] ^= 0x01
    actions = identified().receive(bytes(bad), NOW)
    assert kinds(actions) == ["Rejected"]
    assert actions[0].reason == "bad_crc" and actions[0].reply == b""
    assert actions[0].excerpt == bytes(bad[:32]).hex().encode()  # logged as hex
    assert actions[0].raw == bytes(bad)  # the whole packet, for FramesRejeitados


# --- handshake --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"35630704244101", b"3563070424410133", b"35630704244101X", b"\x00" * 15])
def test_malformed_imei_is_answered_00_and_closed(raw: bytes) -> None:
    codec = TeltonikaStreamCodec()
    actions = codec.receive(len(raw).to_bytes(2, "big") + raw + tv("TV-02"), NOW)
    assert kinds(actions) == ["Rejected", "Close"]
    assert actions[0].reason == "bad_imei" and actions[0].reply == b"\x00"
    assert codec.receive(tv("TV-02"), NOW) == [] and codec.buffered == 0


def test_data_before_handshake_is_refused() -> None:
    actions = TeltonikaStreamCodec().receive(tv("TV-02"), NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reply == b"\x00"


def test_absurd_imei_length_is_refused_before_buffering() -> None:
    codec = TeltonikaStreamCodec()
    actions = codec.receive(b"GET / HTTP/1.1\r\n", NOW)
    assert kinds(actions) == ["Rejected", "Close"] and codec.buffered == 0


def test_luhn_failure_is_flagged_not_refused() -> None:
    actions = TeltonikaStreamCodec().receive(imei_frame("356307042441014"), NOW)
    assert kinds(actions) == ["Flagged", "Identified"]
    assert actions[0].reason == "imei_luhn"
    assert actions[1] == Identified("356307042441014", accept=b"\x01", reject=b"\x00")


# --- frames -------------------------------------------------------------------------------------------


def test_length_above_limit_closes_before_buffering() -> None:
    codec = identified(max_packet_bytes=1024)
    header = b"\x00\x00\x00\x00" + (1024 - 12 + 1).to_bytes(4, "big")
    actions = codec.receive(header, NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reason == "bad_length"
    assert codec.buffered == 0


def test_length_at_limit_is_accepted() -> None:
    records = [
        make_record(1_700_000_000_000 + i, satellites=5, io={1: {n % 200: 1 for n in range(40)}})
        for i in range(12)
    ]
    packet = frame(encode_data(CODEC_8, records))
    codec = identified(max_packet_bytes=len(packet))
    assert kinds(codec.receive(packet, NOW)) == ["Store"]
    too_small = identified(max_packet_bytes=len(packet) - 1)
    assert kinds(too_small.receive(packet, NOW)) == ["Rejected", "Close"]


@pytest.mark.parametrize("length", [0, 1, 2])
def test_impossible_small_length_closes(length: int) -> None:
    actions = identified().receive(b"\x00" * 4 + length.to_bytes(4, "big") + b"\x00" * 16, NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reason == "bad_length"


def test_bad_preamble_closes() -> None:
    actions = identified().receive(b"\x00\x00\x01\x00" + tv("TV-02")[4:], NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reason == "bad_preamble"


def test_unknown_codec_is_rejected_without_ack() -> None:
    actions = identified().receive(frame(b"\x09\x01\x00\x01"), NOW)
    assert kinds(actions) == ["Rejected"] and actions[0].reason == "unknown_codec"


@pytest.mark.parametrize(
    "data,reason",
    [
        (encode_data(CODEC_8, [make_record(1_700_000_000_000)])[:-1] + b"\x02", "malformed"),  # N1 != N2
        (encode_data(CODEC_8, [make_record(1_700_000_000_000)])[:-3] + b"\x01", "truncated"),
        (
            encode_data(CODEC_8, [make_record(1_700_000_000_000)])[:-1] + b"\x00\x01",
            "malformed",
        ),  # trailing byte
        (b"\x08\x00\x00", "malformed"),  # no records
    ],
)
def test_malformed_packets_are_rejected_without_ack(data: bytes, reason: str) -> None:
    actions = identified().receive(frame(data), NOW)
    assert kinds(actions) == ["Rejected"] and actions[0].reason == reason


def test_repeated_bad_frames_close_the_connection_and_good_ones_reset_the_count() -> None:
    bad = bytearray(tv("TV-03"))
    bad[-2] ^= 0xFF
    codec = identified(max_bad_frames=3)
    assert (
        kinds(codec.receive(bytes(bad) * 2 + tv("TV-02") + bytes(bad) * 2, NOW))
        == ["Rejected"] * 2 + ["Store"] + ["Rejected"] * 2
    )
    actions = codec.receive(bytes(bad) + tv("TV-02"), NOW)
    assert kinds(actions) == ["Rejected", "Close"]
    assert codec.receive(tv("TV-02"), NOW) == [] and codec.buffered == 0


def test_record_without_usable_time_uses_server_time_and_a_stable_key() -> None:
    record = make_record(0, event_id=7, io={1: {239: 1}})
    packet = frame(encode_data(CODEC_8, [record]))
    (store,) = identified().receive(packet, NOW)
    (position,) = store.events
    assert position.device_time == NOW and position.attributes["time_source"] == "server"
    assert position.attributes["device_timestamp"] == 0
    (again,) = identified().receive(packet, NOW.replace(hour=13))[0].events
    assert again.key == position.key and again.document_id == position.document_id


def test_timestamp_beyond_int64_is_kept_as_text_so_the_record_can_be_stored() -> None:
    record = make_record(2**64 - 1, satellites=4)
    (position,) = identified().receive(frame(encode_data(CODEC_8, [record])), NOW)[0].events
    assert position.device_time == NOW and position.attributes["time_source"] == "server"
    assert position.attributes["device_timestamp"] == str(2**64 - 1)
    bson.encode(position_document(position))  # MongoDB has no unsigned 64-bit integers


def test_far_future_time_is_flagged() -> None:
    future = make_record(int(NOW.timestamp() * 1000) + 3 * 86_400_000, satellites=7)
    (position,) = identified().receive(frame(encode_data(CODEC_8, [future])), NOW)[0].events
    assert position.attributes["time_suspect"] is True


def test_declared_io_count_mismatch_is_decoded_and_flagged() -> None:
    record = make_record(1_700_000_000_000, io={1: {1: 1}})._replace(declared_total=4)
    (position,) = identified().receive(frame(encode_data(CODEC_8, [record])), NOW)[0].events
    assert position.attributes["io_count_declared"] == 4 and position.attributes["din1"] is True


def test_same_record_in_another_packet_keeps_its_key() -> None:
    a = make_record(1_700_000_000_000, priority=1, event_id=240, satellites=6, io={1: {240: 1}})
    b = make_record(1_700_000_001_000, priority=0, event_id=0, satellites=6)
    first = identified().receive(frame(encode_data(CODEC_8E, [a, b])), NOW)[0].events
    again = identified().receive(frame(encode_data(CODEC_8E, [b])), NOW)[0].events
    assert first[1].key == again[0].key and first[0].key != first[1].key


@pytest.mark.parametrize(
    "io_id,value,alarm",
    [
        (252, 1, "power_cut"),
        (247, 1, "crash"),
        (247, 6, "crash"),
        (246, 1, "tow"),
        (249, 1, "jamming"),
        (236, 1, "alarm"),
    ],
)
def test_alarm_records_carry_an_alarm_event(io_id: int, value: int, alarm: str) -> None:
    record = make_record(1_700_000_000_000, event_id=io_id, satellites=8, io={1: {io_id: value}})
    position, event = identified().receive(frame(encode_data(CODEC_8E, [record])), NOW)[0].events
    assert isinstance(position, Position) and isinstance(event, Alarm)
    assert event.alarm == alarm and event.imei == IMEI and event.position_id == position.document_id


@pytest.mark.parametrize("event_id,io", [(252, {252: 0}), (247, {247: 3}), (0, {252: 1})])
def test_no_alarm_for_other_values_or_periodic_records(event_id: int, io: dict[int, int]) -> None:
    record = make_record(1_700_000_000_000, event_id=event_id, io={1: io})
    events = identified().receive(frame(encode_data(CODEC_8, [record])), NOW)[0].events
    assert [type(e) for e in events] == [Position]


def test_store_before_close_when_garbage_follows_a_good_packet() -> None:
    actions = identified().receive(tv("TV-02") + b"\x01\x02\x03\x04\x05\x06\x07\x08", NOW)
    assert kinds(actions) == ["Store", "Rejected", "Close"]
    assert isinstance(actions[0], Store) and isinstance(actions[2], Close)
    assert isinstance(actions[1], Rejected) and actions[1].reason == "bad_preamble"


# --- UDP datagrams (the codec alone) ------------------------------------------------------------------


def udp_datagram(
    body: bytes, imei: bytes = b"352093086403655", packet_id: int = 0xCAFE, avl_id: int = 9
) -> bytes:
    rest = (
        packet_id.to_bytes(2, "big") + b"\x01" + bytes((avl_id,)) + len(imei).to_bytes(2, "big") + imei + body
    )
    return len(rest).to_bytes(2, "big") + rest


def test_udp_luhn_failure_is_flagged_once_per_device_and_stored() -> None:
    body = encode_data(CODEC_8E, [make_record(1_700_000_000_000, satellites=3)])
    codec = TeltonikaDatagramCodec()
    actions = codec.receive_datagram(udp_datagram(body, b"352093086403656"), NOW)
    assert kinds(actions) == ["Flagged", "Identified", "Store"] and actions[0].reason == "imei_luhn"
    assert actions[2].ack == bytes.fromhex("0005CAFE010901")
    again = codec.receive_datagram(udp_datagram(body, b"352093086403656", avl_id=10), NOW)
    assert kinds(again) == ["Identified", "Store"] and again[1].ack == bytes.fromhex("0005CAFE010A01")
    other = codec.receive_datagram(udp_datagram(body, b"352093086403657"), NOW)
    assert kinds(other) == ["Flagged", "Identified", "Store"]


@pytest.mark.parametrize(
    "datagram,reason",
    [
        (b"\x00\x05\xca\xfe", "truncated"),
        (udp_datagram(encode_data(CODEC_8, [make_record(0)]))[:-1], "bad_length"),
        (udp_datagram(encode_data(CODEC_8, [make_record(0)]), imei=b"35209308640365"), "bad_imei"),
        (udp_datagram(b"\x0c\x01\x06\x00\x00\x00\x00\x01"), "unknown_codec"),
        (udp_datagram(encode_data(CODEC_8, [make_record(0)])[:-2] + b"\x01"), "truncated"),
        (udp_datagram(b""), "truncated"),
        (udp_datagram(b"\x08" * 9000), "too_long"),
    ],
)
def test_udp_bad_datagrams_are_dropped(datagram: bytes, reason: str) -> None:
    actions = TeltonikaDatagramCodec().receive_datagram(datagram, NOW)
    assert kinds(actions) == ["Rejected"] and actions[0].reason == reason
