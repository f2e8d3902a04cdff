"""The TCP envelope shared by every Teltonika codec, and the IMEI.

Frame: preamble ``00000000``, 4-byte data length ``L``, ``L`` bytes of data
(codec ID .. quantity 2), 4-byte CRC (``0000`` + CRC-16/IBM of the data).
"""

from __future__ import annotations

import struct

from waygps.drivers.teltonika.crc import crc16

PREAMBLE = b"\x00\x00\x00\x00"
HEADER = struct.Struct(">II")  # preamble, data length
CRC = struct.Struct(">I")
OVERHEAD = HEADER.size + CRC.size  # 12 bytes around the data field

IMEI_LENGTH = 15


def frame(data: bytes) -> bytes:
    """Wrap a data field (codec ID .. quantity 2) into a TCP frame."""
    return HEADER.pack(0, len(data)) + data + CRC.pack(crc16(data))


def imei_frame(imei: str) -> bytes:
    """The device's first message on a TCP connection."""
    raw = imei.encode("ascii")
    return struct.pack(">H", len(raw)) + raw


def imei_well_formed(raw: bytes) -> bool:
    """Exactly 15 ASCII digits."""
    return len(raw) == IMEI_LENGTH and raw.isdigit() and raw.isascii()


def luhn_ok(imei: str) -> bool:
    """Whether the 15th digit is the Luhn check digit of the first 14."""
    total = 0
    for index, char in enumerate(reversed(imei)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


__all__ = [
    "CRC",
    "HEADER",
    "IMEI_LENGTH",
    "OVERHEAD",
    "PREAMBLE",
    "frame",
    "imei_frame",
    "imei_well_formed",
    "luhn_ok",
]
