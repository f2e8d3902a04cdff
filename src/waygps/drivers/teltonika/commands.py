"""Codec 12 / 13 / 14: GPRS commands to the device and what it answers.

Layouts: docs/drivers/teltonika.md (Protocol notes). Codec 12 carries SMS-style command text
(server -> device, type 05) and the device's response (type 06). Codec 14 is
the same with the target IMEI added (06 = executed, 11 = nACK: another IMEI).
Codec 13 is a one-way, time-stamped message from the device's serial port.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from typing import Any, Mapping

from attrs import frozen

from waygps.commands.model import Command, UnsupportedCommand
from waygps.drivers.teltonika.framing import frame

CODEC_12 = 0x0C
CODEC_13 = 0x0D
CODEC_14 = 0x0E
COMMAND_CODECS = frozenset({CODEC_12, CODEC_13, CODEC_14})

TYPE_COMMAND = 0x05
TYPE_RESPONSE = 0x06
TYPE_NACK = 0x11

MAX_TEXT = 1024

_HEAD = struct.Struct(">BBBI")  # codec, quantity 1, type, size
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# Codec 13 timestamps: the published example carries 8 bytes of milliseconds, the structure table
# 4 bytes of seconds. An 8-byte reading is taken when it lands in this window.
_MS_2000 = 946_684_800_000
_MS_2100 = 4_102_444_800_000


class CommandFrameError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@frozen
class CommandFrame:
    """A decoded Codec 12/13/14 data field."""

    codec: int
    type: int
    payload: bytes  # the text (Codec 14: without the IMEI; Codec 13: without the timestamp)
    imei: str | None = None  # Codec 14
    timestamp: datetime | None = None  # Codec 13

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "backslashreplace")


# --- encoding ----------------------------------------------------------------


def encode_codec12(text: bytes, kind: int = TYPE_COMMAND) -> bytes:
    """A complete Codec 12 TCP frame carrying ``text``."""
    return frame(_HEAD.pack(CODEC_12, 1, kind, len(text)) + text + b"\x01")


def pack_imei(imei: str) -> bytes:
    """15 digits -> 8 bytes: the digits as hexadecimal nibbles, left-padded with 0."""
    if not (len(imei) <= 16 and imei.isdigit() and imei.isascii()):
        raise ValueError(f"not an IMEI: {imei!r}")
    return bytes.fromhex(imei.rjust(16, "0"))


def encode_codec14(imei: str, text: bytes, kind: int = TYPE_COMMAND) -> bytes:
    """A complete Codec 14 TCP frame: ``text`` addressed to ``imei``."""
    body = pack_imei(imei) + text
    return frame(_HEAD.pack(CODEC_14, 1, kind, len(body)) + body + b"\x01")


def encode_codec13(payload: bytes, timestamp_ms: int) -> bytes:
    """A Codec 13 frame as the device sends it (8-byte ms timestamp, as in the published example)."""
    body = _U64.pack(timestamp_ms) + payload
    return frame(_HEAD.pack(CODEC_13, 1, TYPE_COMMAND, len(body)) + body + b"\x01")


def _clean(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """A setparam value: printable ASCII without the separators ``;`` and ``:`` of the syntax."""
    text = "" if value is None else str(value)
    if not text and not allow_empty:
        raise UnsupportedCommand(f"{name} is empty")
    if not text.isascii() or not text.isprintable() or any(c in text for c in ";: "):
        raise UnsupportedCommand(f"{name} {text!r}: only printable ASCII without ';', ':' or spaces")
    return text


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise UnsupportedCommand(f"port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise UnsupportedCommand(f"port {port} out of range")
    return port


def digout_mask(output: int, state: str) -> str:
    """``setdigout`` argument driving one output: ``1`` for DOUT1, ``?1`` for DOUT2 (others left alone)."""
    if not 1 <= output <= 4:
        raise UnsupportedCommand(f"block_output {output}: the devices have outputs 1 to 4")
    return "?" * (output - 1) + state


def command_text(command: Command, block_output: int = 1) -> str:
    """The SMS-style text of a WayGPS command (docs/drivers/teltonika.md, Commands)."""
    params: Mapping[str, Any] = command.params
    kind = command.type
    if kind == "block":
        return "setdigout " + digout_mask(block_output, "1")
    if kind == "unblock":
        return "setdigout " + digout_mask(block_output, "0")
    if kind == "request_position":
        return "getgps"
    if kind == "reboot":
        return "cpureset"
    if kind == "set_server":
        return f"setparam 2004:{_clean('host', params.get('host'))};2005:{_port(params.get('port'))}"
    if kind == "set_apn":
        apn = _clean("apn", params.get("apn"))
        user = _clean("user", params.get("user"), allow_empty=True)
        password = _clean("password", params.get("password"), allow_empty=True)
        return f"setparam 2001:{apn};2002:{user};2003:{password}"
    if kind == "custom":
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UnsupportedCommand("custom command without text")
        if not text.isascii() or not text.isprintable():
            raise UnsupportedCommand("custom command text must be printable ASCII")
        if len(text) > MAX_TEXT:
            raise UnsupportedCommand(f"custom command text longer than {MAX_TEXT} characters")
        return text
    raise UnsupportedCommand(f"teltonika: no command for {kind!r}")


def sets_output(text: str) -> bool:
    """Whether command text drives a digital output high: ``setdigout`` with a ``1`` in its mask."""
    words = text.strip().split()
    return len(words) >= 2 and words[0].lower() == "setdigout" and "1" in words[1]


def cuts_engine(command: Command, block_output: int = 1) -> bool:
    """``block``, or any command whose text sets an output (a custom ``setdigout 1``, ``setdigout ?1``...).

    Every output counts, not only ``block_output``: which relay cuts the engine is the installer's
    choice, and a wrong guess must err towards waiting.
    """
    if command.type == "block":
        return True
    try:
        text = command_text(command, block_output)
    except UnsupportedCommand:
        return False  # never written: the claim fails it
    return sets_output(text)


#: Commands the device executes without answering (a reset): never waited for.
NO_RESPONSE = frozenset({"reboot"})


# --- decoding ------------------------------------------------------------------


def decode_command_data(data: bytes) -> CommandFrame:
    """Decode a Codec 12/13/14 data field (codec ID .. quantity 2)."""
    if len(data) < _HEAD.size + 1:
        raise CommandFrameError("truncated", f"command frame of {len(data)} bytes")
    codec, _quantity, kind, size = _HEAD.unpack_from(data, 0)
    if codec not in COMMAND_CODECS:
        raise CommandFrameError("unknown_codec", f"codec 0x{codec:02X}")
    if _HEAD.size + size + 1 != len(data):
        raise CommandFrameError("malformed", f"size {size} does not fit a data field of {len(data)} bytes")
    payload = bytes(data[_HEAD.size : _HEAD.size + size])
    if codec == CODEC_12:
        return CommandFrame(codec, kind, payload)
    if codec == CODEC_14:
        if size < 8:
            raise CommandFrameError("malformed", f"Codec 14 size {size} has no room for the IMEI")
        digits = payload[:8].hex()
        if not digits.isdigit():
            raise CommandFrameError("malformed", f"Codec 14 IMEI {digits!r} is not decimal")
        return CommandFrame(codec, kind, payload[8:], imei=digits[1:] if digits[0] == "0" else digits)
    # Codec 13
    if size >= 8 and _MS_2000 <= _U64.unpack_from(payload, 0)[0] < _MS_2100:
        millis = _U64.unpack_from(payload, 0)[0]
        return CommandFrame(
            codec, kind, payload[8:], timestamp=datetime.fromtimestamp(millis / 1000, timezone.utc)
        )
    if size >= 4:
        seconds = _U32.unpack_from(payload, 0)[0]
        stamp = datetime.fromtimestamp(seconds, timezone.utc) if seconds * 1000 >= _MS_2000 else None
        return CommandFrame(codec, kind, payload[4:], timestamp=stamp)
    raise CommandFrameError("malformed", f"Codec 13 size {size} has no room for the timestamp")


__all__ = [
    "CODEC_12",
    "CODEC_13",
    "CODEC_14",
    "COMMAND_CODECS",
    "CommandFrame",
    "CommandFrameError",
    "NO_RESPONSE",
    "TYPE_COMMAND",
    "TYPE_NACK",
    "TYPE_RESPONSE",
    "command_text",
    "cuts_engine",
    "decode_command_data",
    "digout_mask",
    "encode_codec12",
    "encode_codec13",
    "encode_codec14",
    "pack_imei",
    "sets_output",
]
