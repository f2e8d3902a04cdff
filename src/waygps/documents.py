"""Events in the contract's words: the ``DadosVeiculo`` document and the JSON of `waygps decode`.

The Portuguese field names of the data contract (``docs/contract.md``) live
here and at the WebSocket edge only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs

from waygps.events import Alarm, CommandAck, Event, Heartbeat, Position


def position_document(position: Position) -> dict[str, Any]:
    """The ``DadosVeiculo`` document of one report (``_id`` deterministic)."""
    attributes = position.attributes  # read only from here on: shared with the event, not copied
    if position.buffered:
        attributes = {**attributes, "buffered": True}
    doc: dict[str, Any] = {
        "_id": position.document_id,
        "IMEI": position.imei,
        "latitude": position.latitude,
        "longitude": position.longitude,
        "altitude": position.altitude,
        "speed": position.speed,
        "course": position.course,
        "satellites": position.satellites,
        "hdop": position.hdop,
        "ignicao": position.ignition,
        "valid": position.valid,
        "dataDevice": position.device_time,
        "dataServidor": position.server_time,
        "protocol": position.protocol,
        "event": position.event,
        "attributes": attributes,
        "raw": position.raw,
    }
    if position.valid and position.latitude is not None and position.longitude is not None:
        doc["location"] = {"type": "Point", "coordinates": [position.longitude, position.latitude]}
    return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


_TYPE_NAMES = {
    Position: "position",
    Heartbeat: "heartbeat",
    CommandAck: "command_ack",
    Alarm: "alarm",
}


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object `waygps decode` prints for an event."""
    if isinstance(event, Position):
        doc = position_document(event)
        doc.pop("_id")
        doc.pop("location", None)
        out = {"type": "position", "id": event.document_id, **doc}
        return _jsonable(out)
    name = _TYPE_NAMES.get(type(event), attrs.has(type(event)) and type(event).__name__.lower())
    out = {"type": name}
    for key, value in attrs.asdict(event, recurse=False).items():
        out["IMEI" if key == "imei" else key] = value
    return _jsonable(out)


# Reading stored documents back (history, the change-stream feed): a field of an odd type reads as
# absent, never raises; MongoDB returns naive UTC times.
def read_number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def read_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def read_time(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
