"""AVL records -> WayGPS events: ``Position`` per record, ``Alarm`` beside it where the record is one.

Identity of a report (``Position.key``): ``<timestamp ms>:<priority>:<event IO id>``
(+ ``:<generation type>`` for Codec 16), the fields a re-sent record repeats
whatever packet it travels in. A record without a usable timestamp (before
2000) is keyed by a digest of its bytes instead and stamped with the server
time (``attributes["time_source"] = "server"``); so is one dated after 2099.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from waygps.drivers.teltonika.avl import CODEC_NAMES, AvlRecord
from waygps.drivers.teltonika.io_table import INT64_MAX, NAMES, UNKNOWN, X
from waygps.events import Alarm, DeviceEvent, Position

PROTOCOL = "teltonika"

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS_2000 = 946_684_800_000
_MS_2100 = 4_102_444_800_000
#: A fix time further ahead of the server clock than this is flagged ``time_suspect``.
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000

# IO id -> (alarm name, values that raise it, message). Raised only when the record was
# produced by that IO's change (event IO id), so periodic records repeating the value do not.
ALARMS: Mapping[int, tuple[str, frozenset[int], str]] = {
    252: ("power_cut", frozenset({1}), "external power disconnected (IO 252 unplug)"),
    247: ("crash", frozenset({1, 6}), "crash detected (IO 247)"),
    246: ("tow", frozenset({1}), "towing detected (IO 246)"),
    249: ("jamming", frozenset({1}), "GSM jamming started (IO 249)"),
    236: ("alarm", frozenset({1}), "alarm input triggered (IO 236)"),
}


def ms_to_datetime(millis: int) -> datetime:
    return EPOCH + timedelta(milliseconds=millis)


def ms_of(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _clip64(raw: int) -> int | str:
    """MongoDB stores signed 64-bit integers: a larger raw value is kept as decimal text."""
    return raw if raw <= INT64_MAX else str(raw)


Plan = tuple[tuple[str, ...], tuple[tuple[str, int, Any], ...]]
Layout = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _plan(names: Mapping[int, Mapping[int, tuple[str, Any]]], layout: Layout) -> Plan:
    """Attribute names of a record's IO IDs (1-, 2-, 4-, 8-byte groups in turn), and
    the (name, index, converter) of every value that needs converting."""
    labels: list[str] = []
    converts: list[tuple[str, int, Any]] = []
    for size, ids in zip((1, 2, 4, 8), layout):
        table = names[size]
        for io_id in ids:
            spec = table.get(io_id)
            if spec is None:
                label, convert = UNKNOWN[io_id], (_clip64 if size == 8 else None)
            else:
                label, convert = spec
            if convert is not None:
                converts.append((label, len(labels), convert))
            labels.append(label)
    return tuple(labels), tuple(converts)


class _Plans(dict):
    """``{layout: plan}``. A device sends the same IDs in the same order record after record,
    so naming a record's elements is one lookup and one ``dict(zip(...))``. Bounded in size."""

    LIMIT = 4096

    def __init__(self, names: Mapping[int, Mapping[int, tuple[str, Any]]]) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, layout: Layout) -> Plan:
        plan = _plan(self.names, layout)
        if len(self) < self.LIMIT:
            self[layout] = plan
        return plan


_PLANS = _Plans(NAMES)


def io_attributes(record: AvlRecord, plans: _Plans = _PLANS) -> dict[str, Any]:
    """Named, scaled IO values of one record; unlisted IDs as ``io<ID>`` with the raw value."""
    g1, g2, g4, g8 = record.groups
    labels, converts = plans[g1[0::2], g2[0::2], g4[0::2], g8[0::2]]
    values = g1[1::2] + g2[1::2] + g4[1::2] + g8[1::2]
    out = dict(zip(labels, values))
    for label, index, convert in converts:
        out[label] = convert(values[index])
    if record.nx:
        table = plans.names[X]
        for io_id, value in record.nx:
            spec = table.get(io_id)
            if spec is None:
                out[UNKNOWN[io_id]] = value.hex()
            else:
                out[spec[0]] = spec[1](value)
    return out


def record_events(record: AvlRecord, codec: int, imei: str, now: datetime, now_ms: int) -> list[DeviceEvent]:
    """The events of one record: its ``Position``, then an ``Alarm`` when the record is one."""
    attributes = io_attributes(record)
    attributes["priority"] = record.priority
    attributes["codec"] = CODEC_NAMES[codec]
    stamp = record.timestamp
    key = f"{stamp}:{record.priority}:{record.event_id}"
    if record.generation is not None:
        attributes["generation_type"] = record.generation
        key += f":{record.generation}"
    if not _MS_2000 <= stamp < _MS_2100:
        device_time = now
        attributes["time_source"] = "server"
        attributes["device_timestamp"] = _clip64(stamp)  # 8 raw bytes may exceed BSON's int64
        key = "raw:" + hashlib.blake2b(record.raw, digest_size=10).hexdigest()
    else:
        device_time = datetime.fromtimestamp(
            stamp / 1000, timezone.utc
        )  # exact to the ms (float error < 1 us)
        if stamp - now_ms > FUTURE_TOLERANCE_MS:
            attributes["time_suspect"] = True
    if record.declared_total is not None:
        attributes["io_count_declared"] = record.declared_total
    satellites = record.satellites
    position = Position(
        imei=imei,
        protocol=PROTOCOL,
        device_time=device_time,
        server_time=now,
        event=str(record.event_id),
        key=key,
        valid=satellites > 0,
        latitude=record.latitude / 10_000_000,
        longitude=record.longitude / 10_000_000,
        altitude=float(record.altitude),
        speed=float(record.speed),
        course=float(record.angle),
        satellites=satellites,
        hdop=attributes.get("hdop"),
        ignition=attributes.get("ignition"),
        attributes=attributes,
        raw=record.raw.hex(),
    )
    alarm = ALARMS.get(record.event_id)
    if alarm is not None:
        name, values, message = alarm
        if record.io.get(record.event_id) in values:
            return [
                position,
                Alarm(
                    imei=imei,
                    protocol=PROTOCOL,
                    server_time=now,
                    alarm=name,
                    message=message,
                    position_id=position.document_id,
                ),
            ]
    return [position]


def records_events(records: list[AvlRecord], codec: int, imei: str, now: datetime) -> list[DeviceEvent]:
    now_ms = ms_of(now)
    events: list[DeviceEvent] = []
    for record in records:
        events.extend(record_events(record, codec, imei, now, now_ms))
    return events


__all__ = [
    "ALARMS",
    "PROTOCOL",
    "io_attributes",
    "ms_of",
    "ms_to_datetime",
    "record_events",
    "records_events",
]
