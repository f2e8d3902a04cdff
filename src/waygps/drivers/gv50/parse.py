"""The parts every @Track text frame shares: header, version, unique ID, send time, count (§2.1).

``parse_frame`` checks them and hands the message-specific fields to
``reports``. Nothing here imports Twisted.
"""

from __future__ import annotations

from datetime import datetime, timezone

HEX_DIGITS = "0123456789abcdefABCDEF"
UTC = timezone.utc

RESP = "RESP"
BUFF = "BUFF"
ACK = "ACK"


class FrameError(ValueError):
    """The frame cannot be decoded; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def is_hex(text: str) -> bool:
    return bool(text) and text.isascii() and not text.strip(HEX_DIGITS)


def is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def valid_unique_id(text: str) -> bool:
    """15 decimal digits (IMEI) or 14 hex characters (the MEID of CDMA units)."""
    n = len(text)
    return (n == 15 and is_digits(text)) or (n == 14 and is_hex(text))


def luhn_ok(imei: str) -> bool:
    """The IMEI's check digit is right (MEIDs carry none: always true)."""
    if len(imei) != 15 or not imei.isdigit():
        return True
    total = 0
    for position, char in enumerate(reversed(imei)):
        digit = ord(char) - 48
        if position & 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def parse_time(text: str) -> datetime:
    """``YYYYMMDDHHMMSS`` as an aware UTC datetime; ValueError when it is not one (month 13...)."""
    if len(text) != 14 or not text.isdigit() or not text.isascii():
        raise ValueError(f"bad time {text[:16]!r}")
    return _from_iso(f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}+00:00")


_from_iso = datetime.fromisoformat


def device_type(version: str) -> str:
    """Device-type code of a protocol version (§2.2): 6 chars of a 10-char version, else 2."""
    return version[:6] if len(version) > 6 else version[:2]


class Frame:
    """One text frame split into fields, its common parts checked."""

    __slots__ = ("kind", "type", "fields", "version", "unique_id", "send_time", "count", "text", "flags")

    def __init__(self, kind: str, type: str, fields: list[str], text: str, flags: tuple[str, ...] = ()) -> None:
        self.kind = kind  # RESP, BUFF or ACK
        self.type = type  # "GTFRI"
        self.fields = fields
        self.version = fields[1]
        unique_id = fields[2]
        # The field itself when already upper case (IMEIs are digits): the ID cache and the
        # connection then hold one string per device, not two.
        self.unique_id = unique_id if unique_id.isdigit() else unique_id.upper()
        self.text = text
        self.flags = flags  # oddities of a frame still worth decoding: "missing_protocol_version", "bad_count"
        if flags and "bad_count" in flags:
            self.count = ""  # nothing to echo: no SACK
            send = fields[-2]
            self.send_time = send if len(send) == 14 and is_digits(send) else ""
        else:
            self.send_time = fields[-2]
            self.count = fields[-1]

    @property
    def buffered(self) -> bool:
        return self.kind == BUFF


_HEADERS: dict[str, tuple[str, str]] = {}  # header field -> (kind, message type), valid ones only
_VERSIONS: set[str] = set()  # protocol versions already found well formed
_IDS: set[str] = set()  # unique IDs already found well formed
_CACHE_LIMIT = 4096


def _header(header: str) -> tuple[str, str]:
    known = _HEADERS.get(header)
    if known is not None:
        return known
    if header.startswith("+RESP:GT"):
        kind, type = RESP, header[6:]
    elif header.startswith("+BUFF:GT"):
        kind, type = BUFF, header[6:]
    elif header.startswith("+ACK:GT"):
        kind, type = ACK, header[5:]
    else:
        raise FrameError("bad_header", header[:16])
    if len(type) != 5 or not type.isascii() or not type[2:].isalpha():
        raise FrameError("bad_header", header[:16])
    if len(_HEADERS) < 512:
        _HEADERS[header] = (kind, type.upper())
    return kind, type.upper()


def _check_version_and_id(version: str, unique_id: str) -> None:
    if len(version) == 15 and is_digits(version):
        # GT300/GL100 dialect: IMEI at 1, count second to last, version last (sample X2).
        raise FrameError("unsupported_dialect", "field 1 is an IMEI, not a protocol version")
    if not (6 <= len(version) <= 10 and is_hex(version)):
        raise FrameError("bad_version", version[:16])
    if not valid_unique_id(unique_id):
        raise FrameError("bad_unique_id", unique_id[:20])


def split_fields(text: str) -> list[str]:
    """The comma-separated fields of a frame (a final ``$``, if still there, is dropped)."""
    return (text[:-1] if text[-1:] == "$" else text).split(",")


def parse_frame(text: str, fields: list[str] | None = None) -> Frame:
    """Check the common fields of ``text`` (one frame, with or without its final ``$``)."""
    if fields is None:
        fields = split_fields(text)
    kind, type = _header(fields[0])
    if len(fields) < 6:
        raise FrameError("too_few_fields", str(len(fields)))
    version, unique_id = fields[1], fields[2]
    flags: tuple[str, ...] = ()
    if version not in _VERSIONS or unique_id not in _IDS:
        if len(version) == 15 and is_digits(version) and _is_count(fields[-1]) and kind != ACK:
            # Older firmware leaves the protocol version out: the IMEI comes first (flagged).
            fields = [fields[0], ""] + fields[1:]
            version, unique_id = "", fields[2]
            flags = ("missing_protocol_version",)
            if not valid_unique_id(unique_id):
                raise FrameError("bad_unique_id", unique_id[:20])
        else:
            _check_version_and_id(version, unique_id)
            if len(_IDS) >= _CACHE_LIMIT:
                _IDS.clear()
                _VERSIONS.clear()
            _VERSIONS.add(version)
            _IDS.add(unique_id)
    count = fields[-1]
    if not _is_count(count):
        if kind == ACK:
            raise FrameError("bad_count", count[:16])
        # Not a count (a truncated frame, an odd firmware): decoded by the blocks' shape, never acknowledged.
        return Frame(kind, type, fields, text, flags + ("bad_count",))
    send = fields[-2]
    if send and (len(send) != 14 or not send.isdigit() or not send.isascii()):
        raise FrameError("bad_send_time", send[:16])
    return Frame(kind, type, fields, text, flags)


def _is_count(text: str) -> bool:
    return len(text) == 4 and text.isascii() and not text.strip(HEX_DIGITS)
