"""The "WB" protocol: frame layout, CRC, encoding (used by the codec, the tests and a simulator).

Every frame, in both directions::

    "WB"        2 bytes   preamble
    length      2 bytes   big endian: the bytes that follow it (type .. CRC), 5..512
    type        1 byte    0x01 login, 0x02 position, 0x03 heartbeat; 0x81.. their acknowledgements
    body        length-5 bytes
    serial      2 bytes   big endian, chosen by the sender; an acknowledgement repeats it
    crc         2 bytes   CRC-16/CCITT-FALSE of length .. serial

Bodies: login = the IMEI as 15 ASCII digits; position = ``>IiiHHB``: UTC Unix
time, latitude and longitude in millionths of a degree, speed in 0.1 km/h,
course in degrees, flags (bit 0 = GPS fix valid, bit 1 = ignition on);
heartbeat = empty. The server answers each frame with ``type | 0x80`` and an empty body.
"""

from __future__ import annotations

import binascii
import struct

PREAMBLE = b"WB"
HEADER = struct.Struct(">2sH")  # preamble, length
TRAILER = 4  # serial + CRC
MAX_FRAME = 2 + 2 + 512
LOGIN, POSITION, HEARTBEAT = 0x01, 0x02, 0x03
ACK = 0x80
POSITION_BODY = struct.Struct(">IiiHHB")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): ``binascii.crc_hqx`` in C."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(kind: int, body: bytes, serial: int) -> bytes:
    """A complete frame (what a device sends, or the server's acknowledgement)."""
    covered = struct.pack(">HB", len(body) + 5, kind) + body + struct.pack(">H", serial)
    return PREAMBLE + covered + struct.pack(">H", crc16(covered))


def ack(kind: int, serial: int) -> bytes:
    return frame(kind | ACK, b"", serial)


def position_body(unix_time: int, latitude: float, longitude: float, speed_kmh: float, course: int,
                  valid: bool = True, ignition: bool = False) -> bytes:
    flags = (1 if valid else 0) | (2 if ignition else 0)
    return POSITION_BODY.pack(unix_time, round(latitude * 1e6), round(longitude * 1e6), round(speed_kmh * 10),
                              course, flags)
