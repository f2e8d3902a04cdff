"""Cutting a GV50 byte stream into @Track text frames (sans-IO, no Twisted).

The splitter follows the protocol's own rules (docs/drivers/gv50.md): drop
bytes before a ``+``; refuse the binary HEX / Protocol Pro formats; a frame
ends at ``$`` (or NUL, or a line feed - log captures have no ``$``); a frame
holding another header token lost its terminator and is split there. Its
buffer never holds more than ``max_frame`` bytes between two calls.
"""

from __future__ import annotations

from typing import Final

# What ``Splitter.feed`` returns: (kind, bytes or str, size in bytes) tuples, in stream order; the kinds
# of waygps.framing (FRAME: a complete frame, its delimiter removed; NOISE: bytes before a "+", an
# empty excerpt when blank; OVERSIZE: longer than the maximum; UNTERMINATED: cut by the next header),
# plus two of its own:
from waygps.framing.pieces import FRAME, NOISE, OVERSIZE, UNTERMINATED

TEXT: Final = "text"  # a FRAME already decoded to str (the bulk path)
BINARY: Final = "binary"  # the device speaks the HEX / Protocol Pro format (excerpt)

EXCERPT = 64
_BLANK = b" \t\r\n\x00"
_BINARY_HEADS = frozenset(
    (b"+RSP", b"+BSP", b"+EVT", b"+BVT", b"+INF", b"+BNF", b"+HBD", b"+CRD", b"+BRD", b"+LGN")
)
_TOKENS = (b"+RESP:", b"+BUFF:", b"+ACK:")
_TEXT_HEADS = (b"+RESP:", b"+BUFF:", b"+ACK:G")
_TEXT_STARTS = ("+RESP:", "+BUFF:", "+ACK:G")


def is_binary(head: bytes) -> bool:
    """``head`` (5 bytes starting with ``+``) opens a binary-format message."""
    return head[1] == 0 or (head[:4] == b"+ACK" and head[4] != 0x3A) or head[:4] in _BINARY_HEADS


def _noise(out: list, junk: bytes) -> None:
    """Bytes outside any frame; blank ones (CR/LF after ``$``) get an empty excerpt: not worth a log line."""
    out.append((NOISE, junk[:EXCERPT] if junk.strip(_BLANK) else b"", len(junk)))


def _split_tokens(frame: bytes, out: list) -> None:
    """``frame`` holds ``+`` after its start: cut before every embedded header token."""
    start = 0
    while True:
        cut = -1
        for token in _TOKENS:
            at = frame.find(token, start + 1)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
        if cut == -1:
            out.append((FRAME, frame[start:], len(frame) - start))
            return
        piece = frame[start:cut]
        out.append((UNTERMINATED, piece[:EXCERPT], len(piece)))
        start = cut


class Splitter:
    """Per-connection framing state."""

    __slots__ = ("max_frame", "_buffer", "_skipping", "binary")

    def __init__(self, max_frame: int = 4096) -> None:
        self.max_frame = max_frame
        self._buffer = b""
        self._skipping = False  # inside an oversize frame: drop through its delimiter
        self.binary = False  # a binary header was seen: the stream cannot be read

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[str, bytes | str, int]]:
        out: list[tuple[str, bytes | str, int]] = []
        if self.binary:
            return out
        buf = self._buffer + data if self._buffer else bytes(data)
        size = len(buf)
        pos = 0
        limit = self.max_frame
        if self._skipping:
            end = _end(buf, 0, size)
            if end == -1:
                self._buffer = b""
                out.append((OVERSIZE, b"", size))
                return out
            out.append((OVERSIZE, b"", end + 1))
            pos = end + 1
            self._skipping = False
        if buf.find(b"\n", pos) == -1 and buf.find(b"\x00", pos) == -1:
            pos = self._clean_frames(buf, pos, out)
        while pos < size:
            if buf[pos] != 0x2B:  # "+"
                plus = buf.find(b"+", pos)
                if plus == -1:
                    _noise(out, buf[pos:])
                    pos = size
                    break
                _noise(out, buf[pos:plus])
                pos = plus
            end = _end(buf, pos, size)
            if not buf.startswith(_TEXT_HEADS, pos):
                head = buf[pos:pos + 5]
                if len(head) == 5:
                    if is_binary(head):
                        out.append((BINARY, buf[pos:pos + EXCERPT], size - pos))
                        self.binary = True
                        self._buffer = b""
                        return out
                elif end == -1:
                    break  # too short to tell text from binary yet
            if end == -1:
                if size - pos > limit:
                    out.append((OVERSIZE, buf[pos:pos + EXCERPT], size - pos))
                    self._skipping = True
                    pos = size
                break
            consumed = end + 1 - pos
            frame = buf[pos:end] if buf[end] == 0x24 else buf[pos:end].rstrip(_BLANK)  # CR before LF
            pos = end + 1
            if consumed > limit + 1:
                out.append((OVERSIZE, frame[:EXCERPT], consumed))
            elif frame.find(b"+", 1) != -1:
                _split_tokens(frame, out)
            else:
                out.append((FRAME, frame, consumed))
        self._buffer = buf[pos:] if pos < size else b""
        return out

    def one_frame(self, data: bytes) -> str | None:
        """``data`` decoded when ``feed(data)`` would give exactly ``[(TEXT, that text, len(data))]``.

        The usual TCP read: one whole frame ending in its ``$``, nothing buffered before it. The
        checks are those ``feed`` and ``_clean_frames`` make for that case; None means "not sure":
        call ``feed``. Changes no state. (Searched in the decoded text, one character per byte:
        str searches cost less than bytes ones.)
        """
        end = len(data) - 1
        if (type(data) is not bytes or self._buffer or self._skipping or self.binary or end > self.max_frame
                or data[-1:] != b"$"):
            return None
        text = data[:end].decode("ascii", "replace")
        # Not one frame when it holds another "$", a line end or NUL, no text header, an embedded header.
        if ("$" in text or "\n" in text or "\x00" in text or not text.startswith(_TEXT_STARTS)
                or text.find("+", 1) != -1):
            return None
        return text

    def _clean_frames(self, buf: bytes, pos: int, out: list) -> int:
        """Bulk path for the usual stream, ``+RESP:...$+RESP:...$``: one decode, one split on ``$``.

        Frames come out as ``TEXT`` (already decoded: ASCII, U+FFFD for any other byte, so one
        character per byte). Returns where the general loop must continue: at the first piece that
        is not a plain text frame (noise, binary, an embedded header, too long), or the unfinished tail.
        """
        pieces = buf[pos:].decode("ascii", "replace").split("$")
        limit = self.max_frame
        for piece in pieces[:-1]:
            if piece.startswith(_TEXT_STARTS) and piece.find("+", 1) == -1 and len(piece) <= limit:
                size = len(piece) + 1
                out.append((TEXT, piece, size))
                pos += size
            else:
                break
        return pos

    def flush(self) -> list[tuple[str, bytes | str, int]]:
        """The end of a datagram (or of a capture) ends its last frame."""
        rest = self._buffer
        self._buffer = b""
        skipping, self._skipping = self._skipping, False
        if not rest or self.binary or skipping:
            return []
        return self.feed(rest + b"\n")


def _end(buf: bytes, start: int, stop: int) -> int:
    """Index of the first delimiter (``$``, NUL or LF) in ``buf[start:stop]``, or -1."""
    dollar = buf.find(b"$", start, stop)
    if dollar != -1:
        stop = dollar
    nul = buf.find(b"\x00", start, stop)
    if nul != -1:
        stop = nul
    lf = buf.find(b"\n", start, stop)
    if lf != -1:
        return lf
    return nul if nul != -1 else dollar
