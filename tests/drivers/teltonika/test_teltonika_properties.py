"""Hypothesis properties: encode -> decode round trips for each codec, chunking independence,
random and corrupted input never raising nor buffering past the limit."""

from __future__ import annotations

from typing import Any

import bson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teltonika_vectors import NOW, tv
from waygps.actions import Close, Rejected, Store
from waygps.documents import position_document
from waygps.drivers.teltonika.avl import (
    CODEC_8,
    CODEC_8E,
    CODEC_16,
    AvlError,
    AvlRecord,
    decode_data,
    encode_data,
)
from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
from waygps.drivers.teltonika.framing import frame, imei_frame
from waygps.events import Position

LIMIT = 1 << 20  # large frames for the round trips; the limit itself is tested below
IMEI = "356307042441013"


@st.composite
def records(draw: Any, codec: int) -> AvlRecord:
    id_max = 0xFF if codec == CODEC_8 else 0xFFFF
    groups = []
    for size in (1, 2, 4, 8):
        pairs = draw(
            st.lists(st.tuples(st.integers(0, id_max), st.integers(0, (1 << (8 * size)) - 1)), max_size=6)
        )
        groups.append(tuple(x for pair in pairs for x in pair))
    nx: tuple[tuple[int, bytes], ...] = ()
    if codec == CODEC_8E:
        nx = tuple(draw(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=3)))
    return AvlRecord(
        timestamp=draw(
            st.one_of(st.integers(0, (1 << 64) - 1), st.integers(946_684_800_000, 4_102_444_799_999))
        ),
        priority=draw(st.integers(0, 255)),
        longitude=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
        latitude=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
        altitude=draw(st.integers(-(1 << 15), (1 << 15) - 1)),
        angle=draw(st.integers(0, 0xFFFF)),
        satellites=draw(st.integers(0, 255)),
        speed=draw(st.integers(0, 0xFFFF)),
        event_id=draw(st.integers(0, id_max)),
        groups=tuple(groups),  # type: ignore[arg-type]
        nx=nx,
        generation=draw(st.integers(0, 255)) if codec == CODEC_16 else None,
    )


@st.composite
def packets(draw: Any) -> tuple[int, list[AvlRecord]]:
    codec = draw(st.sampled_from([CODEC_8, CODEC_8E, CODEC_16]))
    return codec, draw(st.lists(records(codec), min_size=1, max_size=5))


def comparable(record: AvlRecord) -> AvlRecord:
    return record._replace(raw=b"", declared_total=None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_round_trip_of_random_records(packet: tuple[int, list[AvlRecord]]) -> None:
    codec, sent = packet
    got_codec, got = decode_data(encode_data(codec, sent))
    assert got_codec == codec
    assert [comparable(r) for r in got] == sent
    assert all(r.declared_total is None for r in got)
    # and through the stream codec: one Store per packet, one Position per record, ack = record count
    stream = TeltonikaStreamCodec({"max_packet_bytes": LIMIT})
    actions = stream.receive(imei_frame(IMEI) + frame(encode_data(codec, sent)), NOW)
    store = actions[-1]
    assert isinstance(store, Store) and store.ack == len(sent).to_bytes(4, "big")
    positions = [e for e in store.events if isinstance(e, Position)]
    assert len(positions) == len(sent)
    for position, record in zip(positions, sent):
        assert position.latitude == record.latitude / 1e7 and position.longitude == record.longitude / 1e7
        assert position.event == str(record.event_id) and position.valid == (record.satellites > 0)
        assert position.device_time.year >= 2000
        bson.encode(position_document(position))  # storable: else refused, and the device re-sends forever


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int]]:
    parts = [imei_frame(IMEI)]
    for codec, recs in draw(st.lists(packets(), min_size=1, max_size=4)):
        if draw(st.booleans()):
            parts.append(b"\xff")
        parts.append(frame(encode_data(codec, recs)))
    if draw(st.booleans()):  # a damaged packet and a command response too
        bad = bytearray(tv("TV-03"))
        bad[20] ^= 0x10
        parts.append(bytes(bad))
        parts.append(tv("TV-08"))
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    return data, cuts


def summary(actions: list[Any]) -> list[Any]:
    out = []
    for a in actions:
        if isinstance(a, Store):
            out.append(("store", a.ack, [e.document_id if isinstance(e, Position) else e for e in a.events]))
        else:
            out.append(a)
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_any_chunking_gives_the_same_actions(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    whole = TeltonikaStreamCodec({"max_packet_bytes": LIMIT}).receive(data, NOW)
    chunked_codec = TeltonikaStreamCodec({"max_packet_bytes": LIMIT})
    chunked: list[Any] = []
    for start, end in zip([0] + cuts, cuts + [len(data)]):
        chunked.extend(chunked_codec.receive(data[start:end], NOW))
    assert summary(chunked) == summary(whole)
    assert chunked_codec.buffered == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=12), st.booleans(), st.integers(64, 2048))
def test_random_bytes_never_raise_nor_overfill(chunks: list[bytes], identify: bool, limit: int) -> None:
    codec = TeltonikaStreamCodec({"max_packet_bytes": limit, "max_bad_frames": 1000})
    if identify:
        codec.receive(imei_frame(IMEI), NOW)
    for chunk in chunks:
        actions = codec.receive(chunk, NOW)
        assert all(
            isinstance(a, (Store, Rejected, Close)) or type(a).__name__ == "Identified" for a in actions
        )
        assert codec.buffered < limit


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets(), st.data())
def test_corrupted_data_with_a_valid_crc_never_raises(packet: tuple[int, list[AvlRecord]], data: Any) -> None:
    codec, recs = packet
    body = bytearray(encode_data(codec, recs))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(body) - 1))
        body[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(3, len(body)))
    body = body[:cut]
    try:
        decode_data(bytes(body))
    except AvlError:
        pass
    stream = TeltonikaStreamCodec({"max_packet_bytes": LIMIT})
    actions = stream.receive(imei_frame(IMEI) + frame(bytes(body)), NOW)
    assert isinstance(actions[-1], (Store, Rejected))
    udp = bytes(body)
    datagram = (len(udp) + 21).to_bytes(2, "big") + b"\xca\xfe\x01\x07\x00\x0f" + IMEI.encode() + udp
    result = TeltonikaDatagramCodec({"max_packet_bytes": LIMIT}).receive_datagram(datagram, NOW)
    assert isinstance(result[-1], (Store, Rejected))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_datagrams_never_raise(data: bytes) -> None:
    header = tv("TV-12")[2:23]  # packet ids and IMEI, then random records
    for datagram in (data, (len(header) + len(data)).to_bytes(2, "big") + header + data):
        actions = TeltonikaDatagramCodec().receive_datagram(datagram, NOW)
        assert actions and isinstance(actions[-1], (Store, Rejected))
