"""What a framer hands its codec: ``Piece(kind, data, size)`` tuples, in stream order.

``data`` is the frame (``FRAME``) or, for every other kind, a short excerpt for
the log line; ``size`` is how many input bytes the piece stands for (what a
garbage budget counts).
"""

from __future__ import annotations

from typing import Final, NamedTuple

FRAME: Final = "frame"  # a complete frame (text: without its end delimiter)
NOISE: Final = "noise"  # bytes outside any frame (before a start marker / preamble)
OVERSIZE: Final = "oversize"  # a frame longer than the maximum, thrown away
UNTERMINATED: Final = "unterminated"  # text cut short by the next start marker (its end was lost)
BAD_HEADER: Final = "bad_header"  # binary header that cannot be right (preamble, length); the stream is lost

EXCERPT: Final = 48  # bytes of a thrown-away piece kept for its log line


class Piece(NamedTuple):
    kind: str
    data: bytes
    size: int


__all__ = ["BAD_HEADER", "EXCERPT", "FRAME", "NOISE", "OVERSIZE", "UNTERMINATED", "Piece"]
