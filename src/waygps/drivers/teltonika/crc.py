"""CRC-16/IBM (also called CRC-16/ARC): the checksum of every Teltonika TCP frame.

Parameters: polynomial 0x8005 processed bit-reflected (0xA001), initial value 0,
no final XOR; check value of ``b"123456789"`` is 0xBB3D.

The compiled ``anycrc`` package (extra ``waygps[fast]``) is used when it is
installed: a pure-Python loop over a 1 KiB packet costs about as much as
decoding the whole packet. :func:`crc16_python` is the fallback and the
reference the tests compare ``anycrc`` against.
"""

from __future__ import annotations

from typing import Callable


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_python(data: bytes | bytearray | memoryview) -> int:
    """Table-driven CRC-16/IBM in plain Python."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _compiled() -> Callable[[bytes | bytearray | memoryview], int] | None:
    try:
        import anycrc
    except ImportError:
        return None
    model = anycrc.Model("CRC16-ARC")
    if model.calc(b"123456789") != 0xBB3D:  # a different anycrc meaning of the name: do not trust it
        return None
    return model.calc


_FAST = _compiled()

#: The CRC function the codecs use: compiled when available.
crc16: Callable[[bytes | bytearray | memoryview], int] = _FAST or crc16_python

#: Which implementation :data:`crc16` is ("anycrc" or "python").
IMPLEMENTATION = "anycrc" if _FAST is not None else "python"

__all__ = ["IMPLEMENTATION", "crc16", "crc16_python"]
