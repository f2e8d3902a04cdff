"""What the WebSocket feed says and reads: message builders and a client-message parser that cannot raise.

Every date is ISO 8601 UTC ending in ``Z`` (a browser reads a date without a
zone as local time). Nothing here does I/O.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Mapping

import attrs

from waygps.events import Alarm, CommandStatus, DeviceConnected, DeviceDisconnected, Position, StoreStatus

BATTERY_KEYS = ("battery",)  # a percentage in every driver (docs/attributes.md)
CLIENT_TYPES = ("subscribe_mobile", "unsubscribe_mobile")
EVERYONE = ""  # the "imei" of a message every client gets (store alerts)


def iso(value: Any) -> Any:
    """``2026-03-09T11:35:48Z`` for a datetime (naive ones are UTC, as MongoDB returns them), else unchanged."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        else:
            value = value.astimezone(timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    return value


def battery(attributes: Mapping[str, Any]) -> Any:
    for key in BATTERY_KEYS:
        if key in attributes:
            return attributes[key]
    return None


def gps_update(position: Position) -> dict[str, Any]:
    return {
        "type": "gps_update",
        "mobile_id": position.imei,
        "data": {
            "latitud": position.latitude,
            "longitud": position.longitude,
            "velocidad": position.speed,
            "rumbo": position.course,
            "altitud": position.altitude,
            "ignicion": position.ignition,
            "bateria": battery(position.attributes),
            "fecha_gps": iso(position.device_time),
            "evento": position.event,
            "valido": position.valid,
            "protocolo": position.protocol,
        },
    }


def message_for(event: Any) -> tuple[str, dict[str, Any]] | None:
    """(imei, message) for a bus event a dashboard cares about, else ``None``.

    The imei is :data:`EVERYONE` for a message every client gets whatever its scope.
    """
    if isinstance(event, Position):
        # A report without a fix (or flagged by the quality checks) must not move the map.
        if not (event.valid and event.has_coordinates):
            return None
        return event.imei, gps_update(event)
    if isinstance(event, DeviceConnected):
        return event.imei, {"type": "mobile_status", "mobile_id": event.imei, "status": "conectado",
                            "protocolo": event.protocol, "fecha": iso(event.server_time)}
    if isinstance(event, DeviceDisconnected):
        message = {"type": "mobile_status", "mobile_id": event.imei, "status": "desconectado",
                   "protocolo": event.protocol, "fecha": iso(event.server_time)}
        error = getattr(event, "error", "")
        if error:
            message["status"] = "error"
            message["message"] = error
        return event.imei, message
    if isinstance(event, CommandStatus):
        return event.imei, {"type": "command_status", "mobile_id": event.imei, "command_id": event.command_id,
                            "command_type": event.command_type, "status": event.status, "reason": event.reason,
                            "fecha": iso(event.time)}
    if isinstance(event, Alarm):
        return event.imei, {"type": "system_alert", "mobile_id": event.imei, "alert_type": event.alarm,
                            "message": event.message or event.alarm, "fecha": iso(event.server_time)}
    if isinstance(event, StoreStatus):
        if event.available:
            return EVERYONE, {"type": "system_alert", "alert_type": "store_available",
                              "message": "the store takes reports again", "fecha": iso(event.time)}
        return EVERYONE, {"type": "system_alert", "alert_type": "store_unavailable",
                          "message": "the store is unavailable: reports are held by the devices until it is back",
                          "fecha": iso(event.time)}
    return None


def vehicle_summary(doc: Mapping[str, Any], battery_level: Any = None) -> dict[str, Any]:
    """One ``initial_state`` entry from a ``Veiculo`` document (``battery_level``: the last one the feed saw)."""
    imei = doc.get("IMEI")
    if battery_level is None:
        battery_level = doc.get("bateria", doc.get("battery"))
    return {
        "id": imei,
        "mobile_id": imei,
        "patente": doc.get("ds_placa"),
        "ultimo_lat": doc.get("latitude"),
        "ultimo_lon": doc.get("longitude"),
        "velocidad": doc.get("speed"),
        "rumbo": doc.get("course"),
        "ignicion": doc.get("ignicao"),
        "bateria": battery_level,
        "online": bool(doc.get("online")),
        "protocolo": doc.get("protocol"),
        "fecha_gps": iso(doc.get("dataDevice")),
        "ultima_actualizacion": iso(doc.get("lastSeen")),
    }


@attrs.frozen
class ClientMessage:
    kind: str
    mobile_id: str


@attrs.frozen
class BadMessage:
    reason: str  # metric label: binary, not_utf8, invalid_json, too_deep, not_an_object, unknown_type, no_mobile_id
    message: str  # what the client is told


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_client_message(payload: bytes, binary: bool = False) -> ClientMessage | BadMessage:
    """Decode a client message; every malformed input is a :class:`BadMessage`, never an exception.

    The size is bounded before this is called (``websocket.max_message_bytes``).
    """
    if binary:
        return BadMessage("binary", "binary messages are not accepted; send JSON text")
    try:
        value = json.loads(payload)
    except RecursionError:
        return BadMessage("too_deep", "message nested too deeply")
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return BadMessage("invalid_json", "expected a JSON object with a type")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return BadMessage("not_an_object", "expected a JSON object with a type")
    kind = value["type"]
    if kind not in CLIENT_TYPES:
        return BadMessage("unknown_type", f"unknown message type {_short(kind)}")
    mobile_id = value.get("mobile_id")
    if isinstance(mobile_id, int) and not isinstance(mobile_id, bool):
        mobile_id = str(mobile_id)
    if not isinstance(mobile_id, str) or not mobile_id or len(mobile_id) > 64:
        return BadMessage("no_mobile_id", "mobile_id required (a string of at most 64 characters)")
    return ClientMessage(kind, mobile_id)


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
