"""``AT+GT...`` commands for WayGPS command types (docs/drivers/gv50.md, Commands). No Twisted.

Every command ends with a four-hex-digit serial number that the device
echoes in its ``+ACK``; WayGPS gives it in ``Command.serial``.
"""

from __future__ import annotations

import re

from waygps.commands.model import Command, UnsupportedCommand
from waygps.drivers.gv50.parse import is_hex

_PASSWORD = re.compile(r"[0-9A-Za-z]{1,16}\Z")
_FIELD_FORBIDDEN = re.compile(r"[,$\x00-\x1f\x7f-\uffff]")
_CUSTOM = re.compile(r"AT\+GT[A-Z]{3}=[\x20-\x7e]*\Z")
MAX_CUSTOM = 1024


class Settings:
    """What a listener configures for its devices' commands (one object shared by its connections: never changed)."""

    __slots__ = ("password", "heartbeat_minutes", "sack")

    def __init__(self, password: str = "gv50", heartbeat_minutes: int = 5, sack: bool = True) -> None:
        self.password = password
        self.heartbeat_minutes = heartbeat_minutes
        self.sack = sack


def _field(command: Command, name: str, value: object, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit or _FIELD_FORBIDDEN.search(text):
        raise UnsupportedCommand(
            f"{command.type}: {name} {text[:limit]!r} must be at most {limit} printable characters without ',' or '$'"
        )
    return text


def _password(command: Command, settings: Settings) -> str:
    """``params["device_password"]``, or ``params["password"]`` except for set_apn (where the
    contract gives ``password`` to the APN), or the listener's ``password``."""
    params = command.params
    given = params.get("device_password") or (params.get("password") if command.type != "set_apn" else None)
    password = str(given or settings.password)
    if not _PASSWORD.match(password):
        raise UnsupportedCommand("device password must be letters and digits only")
    return password


def _serial(command: Command) -> str:
    serial = command.serial
    if len(serial) != 4 or not is_hex(serial):
        raise UnsupportedCommand(f"serial {serial!r} is not four hex digits")
    return serial


def _port(command: Command, value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UnsupportedCommand(f"set_server: port {value!r} is not 1-65535")
    return port


def _custom(command: Command) -> str:
    """Exactly one ``AT+GTxxx=...$`` command; an empty last field gets ``command.serial``."""
    text = str(command.params.get("text", "")).strip()
    if not text.endswith("$"):
        text += "$"
    body = text[:-1]
    if len(text) > MAX_CUSTOM or not _CUSTOM.match(body) or "$" in body or "AT+" in body[3:]:
        raise UnsupportedCommand(
            "custom: expected exactly one command 'AT+GTxxx=<password>,...,<serial>$' in printable ASCII"
        )
    fields = body.split(",")
    if len(fields) < 2:
        raise UnsupportedCommand("custom: an @Track command has at least a password and a serial number")
    last = fields[-1]
    if not last:
        return body + _serial(command) + "$"
    if len(last) != 4 or not is_hex(last):
        raise UnsupportedCommand(f"custom: last field {last!r} must be a 4-hex-digit serial number or empty")
    return text


def encode(command: Command, settings: Settings) -> tuple[bytes, str]:
    """The bytes of ``command`` and the serial the device will echo."""
    kind = command.type
    if kind == "custom":
        text = _custom(command)
        return text.encode("ascii"), text[:-1].rsplit(",", 1)[-1]
    password = _password(command, settings)
    serial = _serial(command)
    if kind in ("block", "unblock"):
        # Output 1 (the immobiliser relay) on / off, outputs 2 and 3 off, the rest kept.
        level = "1" if kind == "block" else "0"
        text = f"AT+GTOUT={password},{level},,,0,0,0,0,0,0,0,,,,,,,{serial}$"
    elif kind == "set_server":
        host = _field(command, "host", command.params.get("host"))
        if not host:
            raise UnsupportedCommand("set_server: host is missing")
        port = _port(command, command.params.get("port"))
        heartbeat = settings.heartbeat_minutes
        sack = "1" if settings.sack else "0"
        # Long-connection mode (3), buffer replay after live data (1); model-specific fields left empty.
        text = f"AT+GTSRI={password},3,,1,{host},{port},,,,{heartbeat},{sack},,,,,{serial}$"
    elif kind == "set_apn":
        apn = _field(command, "apn", command.params.get("apn"))
        if not apn:
            raise UnsupportedCommand("set_apn: apn is missing")
        user = _field(command, "user", command.params.get("user"))
        secret = _field(command, "password", command.params.get("password"))
        text = f"AT+GTBSI={password},{apn},{user},{secret},,,,,{serial}$"
    elif kind == "reboot":
        text = f"AT+GTRTO={password},3,,,,,,{serial}$"
    elif kind == "request_position":
        text = f"AT+GTRTO={password},1,,,,,,{serial}$"
    else:
        raise UnsupportedCommand(f"gv50 has no command {kind!r}")
    return text.encode("ascii"), serial


# AT+GTOUT parameters 1-12: status, duration and toggle times of outputs 1 to 4 (protocol §5.2).
_OUTPUT_FIELDS = range(1, 13)


def cuts_engine(command: Command) -> bool:
    """Whether ``command`` switches an output on: ``block``, or a custom ``AT+GTOUT`` that does
    anything but hold every output at 0 (a status 1, a pulse duration or a toggle count).

    Any output counts, not only the immobiliser's: which relay a vehicle's installer wired is not
    known here, and a wrong guess must err towards waiting.
    """
    if command.type == "block":
        return True
    if command.type != "custom":
        return False
    text = str(command.params.get("text", "")).strip().upper()
    if not text.startswith("AT+GTOUT="):
        return False
    fields = text[len("AT+GTOUT="):].rstrip("$").split(",")
    return any(fields[i].strip() not in ("", "0") for i in _OUTPUT_FIELDS if i < len(fields))


# Command type of an acknowledgement when the codec did not send the command itself.
ACK_TYPES = {"GTSRI": "set_server", "GTBSI": "set_apn"}
RTO_TYPES = {"RTL": "request_position", "REBOOT": "reboot"}
