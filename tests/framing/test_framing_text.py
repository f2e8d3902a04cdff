"""TextFramer: markers, terminators, caps, resynchronisation, any chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from waygps.framing import FRAME, NOISE, OVERSIZE, UNTERMINATED, GarbageBudget, Piece, TextFramer
from waygps.actions import Close


def h02() -> TextFramer:
    return TextFramer(start=b"*HQ,", end=b"#", max_length=64)


def chunked(framer: TextFramer, data: bytes, cuts: list[int]) -> list[Piece]:
    out: list[Piece] = []
    last = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))):
        out.extend(framer.feed(data[last:cut]))
        last = cut
    out.extend(framer.feed(data[last:]))
    return out


def test_frames_keep_their_start_marker_and_lose_the_terminator() -> None:
    pieces = h02().feed(b"*HQ,1,V1#\r\n*HQ,2,V1#")
    assert pieces == [Piece(FRAME, b"*HQ,1,V1", 9), Piece(NOISE, b"", 2), Piece(FRAME, b"*HQ,2,V1", 9)]


def test_bytes_before_a_marker_are_noise_and_blank_ones_have_no_excerpt() -> None:
    pieces = h02().feed(b"\r\n  garbage*HQ,1#")
    assert pieces == [Piece(NOISE, b"\r\n  garbage", 11), Piece(FRAME, b"*HQ,1", 6)]
    assert h02().feed(b"\r\n\r\n*HQ,1#") == [Piece(NOISE, b"", 4), Piece(FRAME, b"*HQ,1", 6)]


def test_a_marker_before_the_end_resynchronises() -> None:
    pieces = h02().feed(b"*HQ,lost end*HQ,2#")
    assert pieces == [Piece(UNTERMINATED, b"*HQ,lost end", 12), Piece(FRAME, b"*HQ,2", 6)]


def test_a_marker_split_across_reads_is_not_lost() -> None:
    framer = h02()
    assert framer.feed(b"xx*H") == [Piece(NOISE, b"xx", 2)]
    assert framer.feed(b"Q,7#") == [Piece(FRAME, b"*HQ,7", 6)]


def test_an_oversize_frame_is_reported_once_and_skipped_to_the_next_marker() -> None:
    framer = h02()
    first = framer.feed(b"*HQ," + b"A" * 100)
    assert [p.kind for p in first] == [OVERSIZE] and first[0].size == 104 and first[0].data.startswith(b"*HQ,")
    assert framer.buffered == 0 and framer.skipping
    rest = framer.feed(b"B" * 50 + b"*HQ,9#")
    assert rest == [Piece(OVERSIZE, b"", 50), Piece(FRAME, b"*HQ,9", 6)]


def test_the_buffer_stays_bounded_under_endless_input() -> None:
    for framer in (h02(), TextFramer(max_length=64)):
        for _ in range(100):
            framer.feed(b"*HQ," + b"z" * 300)
            assert framer.buffered <= 64 + 4


def test_lines_without_markers() -> None:
    framer = TextFramer(end=(b"\n", b"\r"), max_length=16, strip=b"")
    pieces = framer.feed(b"one\r\ntwo\n\n" + b"x" * 20 + b"\nthree")
    assert pieces == [Piece(FRAME, b"one", 4), Piece(NOISE, b"", 1), Piece(FRAME, b"two", 4), Piece(NOISE, b"", 1),
                      Piece(OVERSIZE, b"x" * 20, 21)]
    assert framer.flush() == [Piece(FRAME, b"three", 6)]


def test_flush_ends_the_last_frame_of_a_datagram() -> None:
    framer = h02()
    assert framer.feed(b"*HQ,1") == []
    assert framer.flush() == [Piece(FRAME, b"*HQ,1", 6)]
    assert framer.buffered == 0


def test_peek_and_take_rest_hand_bytes_to_another_reader() -> None:
    framer = TextFramer()
    framer.push(b"GET / HTTP/1.1\r\n")
    assert framer.peek(4) == b"GET "
    assert framer.take_rest() == b"GET / HTTP/1.1\r\n" and framer.buffered == 0


def test_garbage_budget_ends_in_close() -> None:
    budget = GarbageBudget(100)
    assert budget.spend(60) is None
    budget.reset()
    assert budget.spend(60) is None
    close = budget.spend(40)
    assert isinstance(close, Close) and "100 bytes" in close.reason


_frame = st.binary(max_size=30).map(lambda b: b"*HQ," + b.replace(b"#", b"").replace(b"*", b"") + b"#")
_stream = st.lists(st.one_of(_frame, st.binary(max_size=20)), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_stream, st.lists(st.integers(0, 400), max_size=10))
def test_any_chunking_gives_the_same_frames(data: bytes, cuts: list[int]) -> None:
    whole = h02().feed(data)
    framer = h02()
    parts = chunked(framer, data, cuts)
    assert [p for p in parts if p.kind == FRAME] == [p for p in whole if p.kind == FRAME]
    assert sum(p.size for p in parts) + framer.buffered == len(data)  # every byte is accounted for


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=10))
def test_arbitrary_bytes_never_raise_and_stay_bounded(data: bytes, cuts: list[int]) -> None:
    for framer in (h02(), TextFramer(max_length=64)):
        chunked(framer, data, cuts)
        assert framer.buffered <= 64 + 4
        framer.flush()
        assert framer.buffered == 0
