"""Delimiter-terminated text frames: ``*HQ,...#``, ``$GPRMC...\\r\\n``, one report per line.

``TextFramer`` keeps one connection's unfinished bytes and cuts complete frames
out of them. With ``start`` markers, a frame begins at a marker and anything
before it is ``NOISE``; a marker met before the frame's end means the end was
lost: the piece so far comes out as ``UNTERMINATED`` and framing resumes at the
new marker. Without markers every line is a frame. A frame longer than
``max_length`` comes out as ``OVERSIZE`` and is skipped up to its end (or the next
marker), so the buffer never holds more than about ``max_length`` bytes. Blank
bytes between frames (CR/LF after a terminator, padding, empty lines) come out
as ``NOISE`` with empty ``data``: nothing worth a log line, but a garbage budget
still counts them, so a stream of nothing but NUL bytes is closed too.
"""

from __future__ import annotations

from typing import Iterable

from waygps.framing.pieces import EXCERPT, FRAME, NOISE, OVERSIZE, UNTERMINATED, Piece

BLANK = b" \t\r\n\x00"


def _as_tuple(value: bytes | Iterable[bytes]) -> tuple[bytes, ...]:
    items = (value,) if isinstance(value, (bytes, bytearray)) else tuple(value)
    items = tuple(bytes(item) for item in items)
    if any(not item for item in items):
        raise ValueError("framing: an empty marker or delimiter matches everywhere")
    return items


def _earliest(buf: bytearray, needles: tuple[bytes, ...], start: int, stop: int) -> tuple[int, int]:
    """(index, length) of the first of ``needles`` in ``buf[start:stop]``, or (-1, 0)."""
    best, size = -1, 0
    for needle in needles:
        at = buf.find(needle, start, stop)
        if at != -1 and (best == -1 or at < best):
            best, size = at, len(needle)
            stop = at + len(needle)  # nothing later can win
    return best, size


_piece = tuple.__new__  # builds a Piece without NamedTuple's Python-level __new__ (one per frame)


class TextFramer:
    """Sans-IO text framer: ``feed(bytes) -> [Piece]``; or ``push`` then ``pop`` one piece at a time.

    ``end``: the terminator, or several (the first found ends the frame).
    ``start``: start marker(s); none = every line is a frame. Frames keep their start
    marker and lose their terminator; ``strip`` bytes are removed from both ends.
    """

    __slots__ = ("ends", "starts", "max_length", "strip", "blank", "_buf", "_pos", "_skipping", "_keep", "_end")

    def __init__(self, *, end: bytes | Iterable[bytes] = b"\n", start: bytes | Iterable[bytes] = (),
                 max_length: int = 4096, strip: bytes = b"\r", blank: bytes = BLANK) -> None:
        if max_length < 1:
            raise ValueError(f"framing: max_length must be positive, got {max_length}")
        self.ends = _as_tuple(end)
        if not self.ends:
            raise ValueError("framing: a text framer needs an end delimiter")
        self.starts = _as_tuple(start)
        self.max_length = max_length
        self.strip = strip
        self.blank = blank
        self._buf = bytearray()
        self._pos = 0  # bytes before it are consumed; compacted once per push
        self._skipping = False
        # bytes kept at the end of noise: they may be the first bytes of a marker still arriving
        self._keep = max((len(s) for s in self.starts), default=1) - 1
        self._end = self.ends[0] if len(self.ends) == 1 else None  # the common case: one terminator

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    @property
    def skipping(self) -> bool:
        """Inside an oversize frame: bytes are dropped up to its end."""
        return self._skipping

    def push(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def feed(self, data: bytes) -> list[Piece]:
        self.push(data)
        out = []
        pop = self.pop
        piece = pop()
        while piece is not None:
            out.append(piece)
            piece = pop()
        return out

    def peek(self, size: int) -> bytes:
        """The first ``size`` buffered bytes (fewer if fewer are buffered)."""
        return bytes(self._buf[self._pos:self._pos + size])

    def take_rest(self) -> bytes:
        """Every buffered byte, removed (a codec switching to another framing takes them over)."""
        rest = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = 0
        self._skipping = False
        return rest

    def flush(self) -> list[Piece]:
        """The input ended (end of a datagram or of a capture): what is buffered ends its frame."""
        if self._skipping:
            size = self.buffered
            self._buf.clear()
            self._pos = 0
            self._skipping = False
            return [Piece(OVERSIZE, b"", size)] if size else []
        out = self.feed(b"")
        if self._buf[self._pos:].strip(self.blank):
            out.extend(self.feed(self.ends[0]))
        self._buf.clear()
        self._pos = 0
        return out

    def pop(self) -> Piece | None:
        """The next piece, or ``None`` when the buffer holds no complete one."""
        buf = self._buf
        size = len(buf)
        while self._pos < size:
            pos = self._pos
            if self._skipping:
                dropped = self._skip(buf, pos)
                if dropped is not None:
                    return dropped
                if self._skipping:
                    return None  # too few bytes to tell a marker from the frame's rest
                continue
            if self.starts:
                at, _ = _earliest(buf, self.starts, pos, size)
                if at != pos:
                    junk_end = at if at != -1 else size - self._partial_marker(buf, pos)
                    if junk_end == pos:
                        return None
                    junk = bytes(buf[pos:junk_end])
                    self._pos = junk_end
                    # blank bytes (CR/LF after a frame, padding): no excerpt, nothing to log, but counted
                    return _piece(Piece, (NOISE, junk[:EXCERPT] if junk.strip(self.blank) else b"", len(junk)))
                end, end_size = _earliest(buf, self.ends, pos + 1, size)
                marker, _ = _earliest(buf, self.starts, pos + 1, end if end != -1 else size)
                if marker != -1:  # the next frame starts before this one ended
                    piece = bytes(buf[pos:marker])
                    self._pos = marker
                    return _piece(Piece, (UNTERMINATED, piece[:EXCERPT], len(piece)))
            elif self._end is not None:
                end = buf.find(self._end, pos)
                end_size = len(self._end)
            else:
                end, end_size = _earliest(buf, self.ends, pos, size)
            if end == -1:
                if size - pos > self.max_length:
                    head = bytes(buf[pos:pos + EXCERPT])
                    buf.clear()
                    self._pos = 0
                    self._skipping = True
                    return _piece(Piece, (OVERSIZE, head, size - pos))
                return None
            consumed = end + end_size - pos
            self._pos = end + end_size
            if end - pos > self.max_length:
                return _piece(Piece, (OVERSIZE, bytes(buf[pos:min(end, pos + EXCERPT)]), consumed))
            frame = bytes(buf[pos:end])
            if self.strip:
                frame = frame.strip(self.strip)
            if not self.starts and not frame.strip(self.blank):
                return _piece(Piece, (NOISE, b"", consumed))  # an empty line
            return _piece(Piece, (FRAME, frame, consumed))
        return None

    def _partial_marker(self, buf: bytearray, pos: int) -> int:
        """How many bytes at the end of ``buf`` (after ``pos``) may be the first bytes of a start marker."""
        for size in range(min(self._keep, len(buf) - pos), 0, -1):
            tail = bytes(buf[-size:])
            if any(marker.startswith(tail) for marker in self.starts):
                return size
        return 0

    def _skip(self, buf: bytearray, pos: int) -> Piece | None:
        """Drop the rest of an oversize frame: up to its terminator, or the next start marker."""
        size = len(buf)
        end, end_size = _earliest(buf, self.ends, pos, size)
        stop = end + end_size if end != -1 else size
        if self.starts:
            marker, _ = _earliest(buf, self.starts, pos, end if end != -1 else size)
            if marker != -1:
                stop, end = marker, marker
            elif end == -1:
                stop = size - self._partial_marker(buf, pos)  # keep what may be a marker's first bytes
        if end != -1:
            self._skipping = False
        if stop == pos:
            return None
        self._pos = stop
        return _piece(Piece, (OVERSIZE, b"", stop - pos))


__all__ = ["BLANK", "TextFramer"]
