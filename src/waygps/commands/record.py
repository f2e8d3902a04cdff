"""The ``Comando`` document: its fields, statuses and checks (no I/O, no Twisted).

Shared by the command service (txmongo) and ``waygps command`` (pymongo), so
both write the same document. Field names follow ``contract.md``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Mapping

from waygps.commands.model import COMMAND_TYPES

PENDING = "pending"
SENT = "sent"
CONFIRMED = "confirmed"
FAILED = "failed"
EXPIRED = "expired"

STATUSES = (PENDING, SENT, CONFIRMED, FAILED, EXPIRED)
OPEN = (PENDING, SENT)
FINAL = (CONFIRMED, FAILED, EXPIRED)

# Veiculo fields that operators write as intents.
BLOCK_INTENT = "comandoBloqueo"
SERVER_INTENT = "comandoTrocarIP"
INTENT_FIELDS = (BLOCK_INTENT, SERVER_INTENT)

# Only the newest entries of a command's history are kept (a bounded document).
HISTORY_LIMIT = 50

_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,253}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9]{1,16}$")


class InvalidCommand(ValueError):
    """A command whose type or parameters cannot be sent; the message says why."""


def history_entry(status: str, at: datetime, reason: str) -> dict[str, Any]:
    return {"status": status, "at": at, "reason": reason}


def push_history(status: str, at: datetime, reason: str) -> dict[str, Any]:
    """The ``$push`` clause that appends one history entry, keeping the last :data:`HISTORY_LIMIT`."""
    return {"history": {"$each": [history_entry(status, at, reason)], "$slice": -HISTORY_LIMIT}}


def _text(params: Mapping[str, Any], key: str, required: bool) -> str:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise InvalidCommand(f"params.{key} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidCommand(f"params.{key} must be a string, got {value!r}")
    if any(ord(c) < 32 for c in value):
        raise InvalidCommand(f"params.{key} contains control characters")
    return value


def normalize(command_type: Any, params: Any) -> dict[str, Any]:
    """Checked, normalised parameters for ``command_type``; raises :class:`InvalidCommand`.

    Keys other than the type's own are dropped, except ``device_password`` (any
    type: the device's own command password, for drivers that use one).
    """
    checked = _normalize(command_type, params)
    secret = params.get("device_password") if isinstance(params, Mapping) else None
    if secret not in (None, ""):
        if not isinstance(secret, str) or not _PASSWORD.match(secret):
            raise InvalidCommand("params.device_password must be 1-16 letters or digits")
        checked["device_password"] = secret
    return checked


def _normalize(command_type: Any, params: Any) -> dict[str, Any]:
    if command_type not in COMMAND_TYPES:
        known = ", ".join(sorted(COMMAND_TYPES))
        raise InvalidCommand(f"unknown command type {command_type!r} (known: {known})")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidCommand(f"params must be an object, got {params!r}")
    if command_type == "set_server":
        host = _text(params, "host", True)
        if not _HOST.match(host):
            raise InvalidCommand(f"params.host is not a host name or address: {host!r}")
        port = params.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidCommand(f"params.port must be a port number 1-65535, got {params.get('port')!r}")
        return {"host": host, "port": port}
    if command_type == "set_apn":
        return {"apn": _text(params, "apn", True), "user": _text(params, "user", False),
                "password": _text(params, "password", False)}
    if command_type == "custom":
        return {"text": _text(params, "text", True)}
    return {}


def parse_server(value: Any) -> dict[str, Any]:
    """``"host:port"`` (the ``comandoTrocarIP`` format) -> set_server params."""
    if not isinstance(value, str):
        raise InvalidCommand(f"expected \"host:port\", got {value!r}")
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidCommand(f"expected \"host:port\", got {value!r}")
    return normalize("set_server", {"host": host.strip("[]"), "port": int(port)})


def server_text(params: Mapping[str, Any]) -> str:
    return f"{params.get('host')}:{params.get('port')}"


def new_command(imei: str, command_type: str, params: Mapping[str, Any] | None, now: datetime,
                expiry_hours: float, source: str, reason: str, force: bool = False) -> dict[str, Any]:
    """A ``pending`` command document (no ``_id``: the store assigns an ObjectId).

    ``force``: the operator's override of the speed guard for a vehicle whose movement is unknown
    (never for one known to move); stored as ``force: true`` only when given.
    """
    doc = {
        "IMEI": imei,
        "type": command_type,
        "params": normalize(command_type, params),
        "status": PENDING,
        "createdAt": now,
        "updatedAt": now,
        "expiresAt": now + timedelta(hours=expiry_hours),
        "attempts": 0,
        "serial": None,
        "serials": [],
        "sentAt": None,
        "confirmedAt": None,
        "response": None,
        "error": None,
        "source": source,
        "history": [history_entry(PENDING, now, reason)],
    }
    if force:
        doc["force"] = True
    return doc


def frame_text(data: bytes) -> str:
    """The bytes written to the device, for the document: text when printable ASCII, else hex."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data.hex()
    if all(32 <= ord(c) < 127 or c in "\r\n" for c in text):
        return text
    return data.hex()
