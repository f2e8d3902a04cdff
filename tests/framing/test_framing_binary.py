"""LengthPrefixedFramer (lost stream = one bad piece) and PreambleFramer (resynchronises)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from waygps.framing import (
    BAD_LENGTH, BAD_PREAMBLE, FRAME, NOISE, LengthPrefixedFramer, Piece, PreambleFramer,
)


def teltonika_like() -> LengthPrefixedFramer:
    # preamble 00000000, 4-byte data length L, L bytes, 4-byte CRC
    return LengthPrefixedFramer(header=">II", length_field=1, adjust=12, max_length=256, min_length=3,
                                preamble=b"\0\0\0\0", idle=b"\xff")


def tel(data: bytes) -> bytes:
    return struct.pack(">II", 0, len(data)) + data + b"CRC!"


def gt06_like() -> PreambleFramer:
    # 78 78, 1-byte length counting what follows up to the CRC, ..., 0D 0A
    return PreambleFramer(preamble=b"\x78\x78", header=">2sB", length_field=1, adjust=5, max_length=64,
                          trailer=b"\r\n")


def gt(body: bytes) -> bytes:
    return b"\x78\x78" + bytes([len(body)]) + body + b"\r\n"


def test_frames_come_whole_and_keep_alives_are_dropped() -> None:
    framer = teltonika_like()
    data = tel(b"abc") + b"\xff" + tel(b"defgh")
    assert framer.feed(data) == [Piece(FRAME, tel(b"abc"), 15), Piece(FRAME, tel(b"defgh"), 17)]
    assert framer.buffered == 0


def test_a_frame_waits_for_its_last_byte() -> None:
    framer = teltonika_like()
    whole = tel(b"payload")
    assert framer.feed(whole[:5]) == [] and framer.feed(whole[5:-1]) == []
    assert framer.feed(whole[-1:]) == [Piece(FRAME, whole, len(whole))]


def test_a_wrong_preamble_loses_the_stream() -> None:
    framer = teltonika_like()
    pieces = framer.feed(b"\x00\x00\x00\x01\x00\x00\x00\x03abcCRC!" + tel(b"xyz"))
    assert [p.kind for p in pieces] == [BAD_PREAMBLE] and framer.lost
    assert framer.feed(tel(b"more")) == [] and framer.buffered == 0


def test_an_impossible_length_is_refused_before_anything_is_buffered() -> None:
    framer = teltonika_like()
    pieces = framer.feed(struct.pack(">II", 0, 10_000_000))
    assert [p.kind for p in pieces] == [BAD_LENGTH] and framer.last_length == 10_000_000
    short = teltonika_like()
    assert [p.kind for p in short.feed(struct.pack(">II", 0, 2) + b"ab")] == [BAD_LENGTH]


def test_peek_and_skip_serve_a_handshake_before_the_frames() -> None:
    framer = teltonika_like()
    framer.push(b"\x00\x0f123456789012345" + tel(b"abc"))
    assert framer.peek(2) == b"\x00\x0f"
    framer.skip(17)
    assert framer.feed(b"") == [Piece(FRAME, tel(b"abc"), 15)]


def test_preamble_framer_skips_noise_and_bad_frames() -> None:
    framer = gt06_like()
    bad_trailer = b"\x78\x78\x02abXX"
    pieces = framer.feed(b"junk" + gt(b"one") + bad_trailer + gt(b"two"))
    frames = [p.data for p in pieces if p.kind == FRAME]
    assert frames == [gt(b"one"), gt(b"two")]
    assert pieces[0] == Piece(NOISE, b"junk", 4)
    assert sum(p.size for p in pieces if p.kind == NOISE) == 4 + len(bad_trailer)


_packet = st.binary(min_size=3, max_size=40).map(tel)


@settings(max_examples=200, deadline=None)
@given(st.lists(_packet, max_size=8), st.lists(st.integers(0, 500), max_size=10))
def test_any_chunking_gives_the_same_frames(packets: list[bytes], cuts: list[int]) -> None:
    data = b"".join(packets)
    framer = teltonika_like()
    out: list[Piece] = []
    last = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))):
        out.extend(framer.feed(data[last:cut]))
        last = cut
    out.extend(framer.feed(data[last:]))
    assert [p.data for p in out] == packets and framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises_and_stays_bounded(data: bytes) -> None:
    for framer in (teltonika_like(), gt06_like()):
        for i in range(0, len(data), 7):
            framer.feed(data[i:i + 7])
            assert framer.buffered <= 256
