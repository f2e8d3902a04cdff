"""Binary frames whose header says how long they are.

``LengthPrefixedFramer``: a header (``struct`` layout) holds the length; the
frame is ``length + adjust`` bytes in all. A stream whose header cannot be right
(wrong preamble, impossible length) has lost its frame boundaries for good: the
framer returns one ``BAD_PREAMBLE`` / ``BAD_LENGTH`` piece, drops everything after
it, and the codec closes the connection (Teltonika TCP).

``PreambleFramer``: the same, with a fixed preamble that lets the framer find
the next frame again: bytes before a preamble are ``NOISE``, and a frame whose
length or trailer is wrong is given up one byte at a time until the next
preamble (GT06-style ``78 78 len ... 0D 0A``).

Both keep a read position and compact the buffer once per ``feed``, so a
buffer of many frames is cut in linear time.
"""

from __future__ import annotations

import struct
from typing import Final

from waygps.framing.pieces import EXCERPT, FRAME, NOISE, Piece

BAD_PREAMBLE: Final = "bad_preamble"
BAD_LENGTH: Final = "bad_length"
BAD_TRAILER: Final = "bad_trailer"


class LengthPrefixedFramer:
    """``header``: struct layout of the fixed header (``">II"``); ``length_field``: which unpacked value
    is the length; a frame is ``length + adjust`` bytes long (``adjust`` = what the length does not
    count: header, CRC...). ``min_length`` / ``max_length`` bound the length value and the whole frame.
    ``idle``: single bytes dropped between frames (keep-alives such as Teltonika's ``FF``)."""

    resync = False

    def __init__(self, *, header: str | struct.Struct, length_field: int = -1, adjust: int = 0,
                 max_length: int = 8192, min_length: int = 0, preamble: bytes = b"", trailer: bytes = b"",
                 idle: bytes = b"") -> None:
        self.header = header if isinstance(header, struct.Struct) else struct.Struct(header)
        self.length_field = length_field
        self.adjust = adjust
        self.max_length = max_length
        self.min_length = min_length
        self.preamble = bytes(preamble)
        self.trailer = bytes(trailer)
        self.idle = bytes(idle)
        if self.header.size < len(self.preamble):
            raise ValueError("framing: the header must cover the preamble")
        self.last_length: int | None = None  # the length value of the last bad header
        self.lost = False  # a bad header was seen (no resynchronisation): input is dropped
        self._buf = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def push(self, data: bytes) -> None:
        if self.lost:
            return
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def feed(self, data: bytes) -> list[Piece]:
        self.push(data)
        out = []
        piece = self.pop()
        while piece is not None:
            out.append(piece)
            piece = self.pop()
        return out

    def peek(self, size: int) -> bytes:
        return bytes(self._buf[self._pos:self._pos + size])

    def skip(self, size: int) -> None:
        """Consume ``size`` bytes the codec read itself (a handshake before the framed part)."""
        self._pos = min(self._pos + size, len(self._buf))

    def clear(self) -> None:
        """Drop everything buffered (the codec closed the connection)."""
        self._buf.clear()
        self._pos = 0

    def pop(self) -> Piece | None:
        buf, pos = self._buf, self._pos
        end = len(buf)
        idle = self.idle
        while idle and pos < end and buf[pos] in idle:
            pos += 1
        self._pos = pos
        if pos >= end or self.lost:
            self._compact()
            return None
        preamble = self.preamble
        if self.resync and not buf.startswith(preamble, pos):
            return self._noise(pos)
        if end - pos < self.header.size:
            return None
        if preamble and not buf.startswith(preamble, pos):
            return self._lose(BAD_PREAMBLE)
        value = self.header.unpack_from(buf, pos)[self.length_field]
        size = value + self.adjust
        if value < self.min_length or size > self.max_length or size < self.header.size:
            self.last_length = value
            return self._noise(pos + 1) if self.resync else self._lose(BAD_LENGTH)
        if end - pos < size:
            return None
        if self.trailer and not buf.startswith(self.trailer, pos + size - len(self.trailer)):
            return self._noise(pos + 1) if self.resync else self._lose(BAD_TRAILER)
        self._pos = pos + size
        return Piece(FRAME, bytes(buf[pos:pos + size]), size)

    def _noise(self, search_from: int) -> Piece | None:
        """Bytes up to the next preamble (from ``search_from``) are not a frame."""
        buf, pos = self._buf, self._pos
        at = buf.find(self.preamble, search_from) if self.preamble else search_from
        stop = at if at != -1 else max(len(buf) - len(self.preamble) + 1, pos)
        if stop <= pos:
            return None
        junk = bytes(buf[pos:stop])
        self._pos = stop
        return Piece(NOISE, junk[:EXCERPT], len(junk))

    def _lose(self, kind: str) -> Piece:
        buf, pos = self._buf, self._pos
        piece = Piece(kind, bytes(buf[pos:pos + EXCERPT]), len(buf) - pos)
        self.lost = True
        buf.clear()
        self._pos = 0
        return piece

    def _compact(self) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0


class PreambleFramer(LengthPrefixedFramer):
    """A length-prefixed framer that finds the next frame again after garbage (``preamble`` required)."""

    resync = True

    def __init__(self, *, preamble: bytes, **settings: object) -> None:
        if not preamble:
            raise ValueError("framing: a preamble framer needs a preamble")
        super().__init__(preamble=preamble, **settings)  # type: ignore[arg-type]


__all__ = ["BAD_LENGTH", "BAD_PREAMBLE", "BAD_TRAILER", "LengthPrefixedFramer", "PreambleFramer"]
