"""Change-stream documents back into the bus events the WebSocket feed understands.

No I/O and no Twisted: :class:`ChangeReader` is fed one change document at a
time and returns the events it means. It remembers, per device, whether it was
online and on which instance, so that a ``Veiculo`` write that changed nothing
a dashboard shows (``lastSeen``, a position) yields no ``mobile_status``; the
memory is one dictionary entry per device (the state tuples are shared).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

from waygps.config import Collections
from waygps.documents import read_count, read_flag, read_number, read_time
from waygps.events import Alarm, CommandStatus, DeviceConnected, DeviceDisconnected, Position

WRITES = ("insert", "update", "replace")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_STATES = 1024


def _utc(value: Any) -> datetime:
    return read_time(value) or _EPOCH


def position_from_document(doc: Mapping[str, Any]) -> Position:
    """The :class:`Position` of a stored ``DadosVeiculo`` document.

    The device-side ``key`` is not stored; the rebuilt position carries the
    stored ``_id`` there (so its ``document_id`` is not the stored one: use
    ``attributes["stored_id"]``).
    """
    attributes = dict(doc.get("attributes") or {})
    buffered = bool(attributes.pop("buffered", False))
    attributes["stored_id"] = str(doc.get("_id"))
    return Position(
        imei=str(doc.get("IMEI", "")),
        protocol=str(doc.get("protocol", "")),
        device_time=_utc(doc.get("dataDevice")),
        server_time=_utc(doc.get("dataServidor")),
        event=str(doc.get("event", "")),
        key=str(doc.get("_id")),
        valid=bool(doc.get("valid")),
        latitude=read_number(doc.get("latitude")),
        longitude=read_number(doc.get("longitude")),
        altitude=read_number(doc.get("altitude")),
        speed=read_number(doc.get("speed")),
        course=read_number(doc.get("course")),
        satellites=read_count(doc.get("satellites")),
        hdop=read_number(doc.get("hdop")),
        ignition=read_flag(doc.get("ignicao")),
        buffered=buffered,
        attributes=attributes,
        raw=str(doc.get("raw") or ""),
    )


def alarm_document(alarm: Alarm) -> dict[str, Any]:
    """The ``Alarme`` document of an alarm; ``_id`` deterministic, so a re-sent report stores it once."""
    key = f"{alarm.imei}\x1f{alarm.alarm}\x1f{alarm.position_id or alarm.server_time.isoformat()}"
    return {
        "_id": hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest(),
        "IMEI": alarm.imei,
        "protocol": alarm.protocol,
        "alarm": alarm.alarm,
        "message": alarm.message,
        "positionId": alarm.position_id,
        "dataServidor": alarm.server_time,
    }


def alarm_from_document(doc: Mapping[str, Any]) -> Alarm:
    position_id = doc.get("positionId")
    return Alarm(imei=str(doc.get("IMEI", "")), protocol=str(doc.get("protocol", "")),
                 server_time=_utc(doc.get("dataServidor")), alarm=str(doc.get("alarm", "")),
                 message=str(doc.get("message") or ""),
                 position_id=str(position_id) if position_id is not None else None)


class ChangeReader:
    """Turns the change documents of the four watched collections into events."""

    def __init__(self, collections: Collections) -> None:
        self.collections = collections
        self._devices: dict[str, tuple[bool, str]] = {}
        # The few distinct (online, instance) states, each one tuple shared by every device in it.
        self._states: dict[tuple[bool, str], tuple[bool, str]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        c = self.collections
        return (c.positions, c.vehicles, c.commands, c.alarms)

    def read(self, change: Mapping[str, Any]) -> list[Any]:
        """The events of one change (often none)."""
        if change.get("operationType") not in WRITES:
            return []
        doc = change.get("fullDocument")
        if not isinstance(doc, Mapping):
            return []  # deleted before the look-up: nothing current to show
        collection = (change.get("ns") or {}).get("coll")
        c = self.collections
        if collection == c.positions:
            if change.get("operationType") != "insert":
                return []
            return [position_from_document(doc)]
        if collection == c.vehicles:
            return self._vehicle(change, doc)
        if collection == c.commands:
            return self._command(change, doc)
        if collection == c.alarms and change.get("operationType") == "insert":
            return [alarm_from_document(doc)]
        return []

    def _state(self, online: bool, instance: str) -> tuple[bool, str]:
        state = (online, instance)
        shared = self._states.get(state)
        if shared is None:
            if len(self._states) >= _MAX_STATES:
                self._states.clear()  # only a cluster with that many instance names gets here
            shared = self._states[state] = state
        return shared

    def _vehicle(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Any]:
        imei = doc.get("IMEI")
        if not isinstance(imei, str):
            return []
        online = bool(doc.get("online"))
        instance = str(doc.get("instance") or "")
        known = self._devices.get(imei)
        self._devices[imei] = self._state(online, instance)
        if known is None:
            fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
            if change.get("operationType") == "update" and "online" not in fields and "instance" not in fields:
                return []  # first sight of this device, and its state did not change
        elif known == (online, instance) or (not online and not known[0]):
            return []
        when = _utc(doc.get("lastSeen"))
        protocol = str(doc.get("protocol") or "")
        if online:
            return [DeviceConnected(imei=imei, protocol=protocol, server_time=when, peer="", transport="",
                                    listener="", instance=instance)]
        return [DeviceDisconnected(imei=imei, protocol=protocol, server_time=when, peer="", reason="offline",
                                   listener="", instance=instance)]

    def _command(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Any]:
        if change.get("operationType") == "update":
            fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
            if "status" not in fields:
                return []
        history = doc.get("history") or []
        reason = ""
        if isinstance(history, list) and history and isinstance(history[-1], Mapping):
            reason = str(history[-1].get("reason") or "")
        return [CommandStatus(command_id=str(doc.get("_id")), imei=str(doc.get("IMEI", "")),
                              command_type=str(doc.get("type", "")), status=str(doc.get("status", "")),
                              reason=reason, time=_utc(doc.get("updatedAt")))]

    def holder(self, change: Mapping[str, Any]) -> tuple[str, str, datetime] | None:
        """(IMEI, instance, lastSeen) of a ``Veiculo`` change that names its holder, else ``None``."""
        if change.get("operationType") not in WRITES:
            return None
        if (change.get("ns") or {}).get("coll") != self.collections.vehicles:
            return None
        doc = change.get("fullDocument")
        if not isinstance(doc, Mapping) or not doc.get("online"):
            return None
        imei, instance = doc.get("IMEI"), doc.get("instance")
        if not isinstance(imei, str) or not isinstance(instance, str) or not instance:
            return None
        return imei, instance, _utc(doc.get("lastSeen"))
