"""The ``Veiculo`` document of a device: many events folded into one upsert.

Events of one device are folded into a :class:`VehicleDelta`, which becomes one
update pipeline (MongoDB >= 4.2) so that "only when newer" is decided by the
server against the stored document, not by this process:

* ``latitude``, ``longitude``, ``speed``, ``course``, ``dataDevice``,
  ``location``: from the newest *valid* report, and only when its
  ``dataDevice`` is newer than the stored one (a ``+BUFF`` replay of an old
  report never moves the vehicle back);
* ``ignicao``: from the newest report that states it, when that report is not
  older than the stored ``dataDevice``;
* ``lastSeen``: the later of the stored value and the newest frame;
* ``online`` / ``protocol`` / ``instance`` (the WayGPS instance holding the
  connection, when ``DeviceConnected`` carries one): the value of the last
  event in delivery order,
  decided by a sequence number (``seq``) because position reports are folded
  only after they are stored, which may be after a later session event; a
  ``DeviceDisconnected`` of an instance sets ``online: false`` only while the
  stored ``instance`` is that instance (or none): a device that moved to
  another instance stays online (cluster takeover, docs/scaling.md);
* ``ds_modelo``: only when the stored one is missing or empty;
* ``battery`` (%), ``power`` (V), ``rssi`` (GSM CSQ 0-31), ``gsmSignal``
  (Teltonika's 0-5 level), ``satellites``: the value of the newest report that
  states it, written only when that report is not older than the stored
  ``dataDevice`` (a replayed old report does not overwrite a newer level).

Operator fields (``ds_placa``, ``comandoBloqueo``, ``bloqueado``,
``comandoTrocarIP``) are never named, so never touched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from waygps.events import DeviceConnected, DeviceDisconnected, Heartbeat, Position

MODEL_ATTRIBUTES = ("model", "device_type", "device_name")
# Veiculo field <- attribute of a report (docs/attributes.md); satellites come from the report itself.
STATE_ATTRIBUTES = (("battery", "battery"), ("power", "power"), ("rssi", "rssi"), ("gsmSignal", "gsm_signal"))


def _literal(value: Any) -> Any:
    """A value that an aggregation expression takes as itself (``"$x"`` is not a path)."""
    return {"$literal": value}


class VehicleDelta:
    """What is known about one device since its last ``Veiculo`` write."""

    __slots__ = ("imei", "last_seen", "online", "online_seq", "protocol", "protocol_seq", "instance",
                 "offline_of", "position", "ignition", "ignition_time", "model", "state")

    def __init__(self, imei: str) -> None:
        self.imei = imei
        self.last_seen: datetime | None = None
        self.online: bool | None = None
        self.online_seq = -1
        self.protocol: str | None = None
        self.protocol_seq = -1
        self.instance: str | None = None
        self.offline_of: str | None = None
        self.position: Position | None = None
        self.ignition: bool | None = None
        self.ignition_time: datetime | None = None
        self.model: str | None = None
        self.state: dict[str, tuple[Any, datetime]] = {}  # Veiculo field -> (value, report time)

    # --- folding ------------------------------------------------------------
    def seen(self, when: datetime) -> None:
        if self.last_seen is None or when > self.last_seen:
            self.last_seen = when

    def set_online(self, online: bool, seq: int, of: str | None = None) -> None:
        """``of``: the instance whose connection went offline (``None``: whichever holds it)."""
        if seq >= self.online_seq:
            self.online, self.online_seq = online, seq
            self.offline_of = of if not online else None

    def set_protocol(self, protocol: str, seq: int, instance: str | None = None) -> None:
        """Protocol (and instance) of the connection of the event numbered ``seq``."""
        if seq >= self.protocol_seq:
            self.protocol, self.protocol_seq = protocol, seq
            if instance:
                self.instance = instance

    def add(self, event: Any, seq: int) -> None:
        """Fold one event delivered as number ``seq`` (increasing in delivery order)."""
        if isinstance(event, Position):
            self.add_position(event, seq)
        elif isinstance(event, Heartbeat):
            self.seen(event.server_time)
            self.set_online(True, seq)
        elif isinstance(event, DeviceConnected):
            self.seen(event.server_time)
            self.set_online(True, seq)
            self.set_protocol(event.protocol, seq, getattr(event, "instance", None))
        elif isinstance(event, DeviceDisconnected):
            self.set_online(False, seq, getattr(event, "instance", None) or None)

    def add_position(self, position: Position, seq: int) -> None:
        # Runs for every stored report: seen / set_protocol / set_online written out.
        server_time = position.server_time
        if self.last_seen is None or server_time > self.last_seen:
            self.last_seen = server_time
        if seq >= self.protocol_seq:
            self.protocol, self.protocol_seq = position.protocol, seq
        if not position.buffered and seq >= self.online_seq:
            # (a replayed +BUFF report says nothing about the link now)
            self.online, self.online_seq, self.offline_of = True, seq, None
        when = position.device_time
        if position.valid and position.latitude is not None and position.longitude is not None:
            if self.position is None or when >= self.position.device_time:
                self.position = position
        if position.ignition is not None:
            if self.ignition_time is None or when >= self.ignition_time:
                self.ignition, self.ignition_time = position.ignition, when
        attributes = position.attributes
        state = self.state
        for field, key in STATE_ATTRIBUTES:
            value = attributes.get(key)
            if value is not None and (type(value) is int or type(value) is float or (
                    isinstance(value, (int, float)) and not isinstance(value, bool))):
                known = state.get(field)
                if known is None or when >= known[1]:
                    state[field] = (value, when)
        if position.satellites is not None:
            self._state("satellites", position.satellites, when)
        if self.model is None:
            for key in MODEL_ATTRIBUTES:
                value = attributes.get(key)
                if value is not None and isinstance(value, str) and value.strip():
                    self.model = value.strip()
                    break

    def _state(self, field: str, value: Any, when: datetime) -> None:
        known = self.state.get(field)
        if known is None or when >= known[1]:
            self.state[field] = (value, when)

    def merge(self, later: "VehicleDelta") -> None:
        """Fold a delta gathered after this one (a write that failed is retried with what came since)."""
        if later.last_seen is not None:
            self.seen(later.last_seen)
        if later.online is not None:
            self.set_online(later.online, later.online_seq, later.offline_of)
        if later.protocol is not None:
            self.set_protocol(later.protocol, later.protocol_seq, later.instance)
        if later.position is not None:
            if self.position is None or later.position.device_time >= self.position.device_time:
                self.position = later.position
        if later.ignition is not None:
            if later.ignition_time is not None and (
                    self.ignition_time is None or later.ignition_time >= self.ignition_time):
                self.ignition, self.ignition_time = later.ignition, later.ignition_time
        if self.model is None:
            self.model = later.model
        for field, (value, when) in later.state.items():
            self._state(field, value, when)

    # --- writing --------------------------------------------------------------
    def pipeline(self) -> list[dict[str, Any]]:
        """The update pipeline (one ``$set`` stage) that applies this delta."""
        fields: dict[str, Any] = {}
        if self.last_seen is not None:
            fields["lastSeen"] = {"$max": ["$lastSeen", self.last_seen]}
        if self.online is not None:
            if self.online is False and self.offline_of and self.instance != self.offline_of:
                # (when this delta itself records that instance's connection, it held the device last)
                holder = {"$ifNull": ["$instance", ""]}
                fields["online"] = {"$cond": [{"$in": [holder, ["", self.offline_of]]}, False, "$online"]}
            else:
                fields["online"] = _literal(self.online)
        if self.protocol is not None:
            fields["protocol"] = _literal(self.protocol)
        if self.instance is not None:
            fields["instance"] = _literal(self.instance)
        position = self.position
        if position is not None:
            newer = {"$lt": ["$dataDevice", position.device_time]}
            values = {
                "latitude": position.latitude,
                "longitude": position.longitude,
                "speed": position.speed,
                "course": position.course,
                "dataDevice": position.device_time,
                "location": {"type": "Point", "coordinates": [position.longitude, position.latitude]},
            }
            for name, value in values.items():
                fields[name] = {"$cond": [newer, _literal(value), f"${name}"]}
        ignition_time = self.ignition_time
        if self.ignition is not None and ignition_time is not None and (
            position is None or ignition_time >= position.device_time
        ):
            # Not older than the stored fix (compared before this stage applies).
            not_older = {"$lte": ["$dataDevice", ignition_time]}
            fields["ignicao"] = {"$cond": [not_older, self.ignition, "$ignicao"]}
        for field, (value, when) in self.state.items():
            fields[field] = {"$cond": [{"$lte": ["$dataDevice", when]}, _literal(value), f"${field}"]}
        if self.model is not None:
            empty = {"$eq": [{"$ifNull": ["$ds_modelo", ""]}, ""]}
            fields["ds_modelo"] = {"$cond": [empty, _literal(self.model), "$ds_modelo"]}
        return [{"$set": fields}] if fields else []

    def update(self) -> UpdateOne | None:
        """The upsert of this device's ``Veiculo`` document (``None`` when there is nothing to write)."""
        pipeline = self.pipeline()
        if not pipeline:
            return None
        return UpdateOne({"IMEI": self.imei}, pipeline, upsert=True)


def fold(deltas: dict[str, VehicleDelta], event: Any, seq: int) -> None:
    """Fold ``event`` into the delta of its device in ``deltas`` (created when missing)."""
    imei = getattr(event, "imei", None)
    if not imei or not isinstance(event, (Position, Heartbeat, DeviceConnected, DeviceDisconnected)):
        return
    delta = deltas.get(imei)
    if delta is None:
        delta = deltas[imei] = VehicleDelta(imei)
    delta.add(event, seq)


def touches_vehicle(event: Any) -> bool:
    return isinstance(event, (Position, Heartbeat, DeviceConnected, DeviceDisconnected))
