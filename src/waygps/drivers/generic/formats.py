"""The text formats of the generic driver, parsed into :class:`Position` events.

Three line formats, told apart by their first characters, with no configuration:

* a JSON object (or an array of them) — flat fields, or the nested
  ``{"device_id": ..., "location": {"coords": {...}}}`` body of the Traccar Client app;
* ``KEY: value`` / ``key=value`` pairs separated by ``,`` ``;`` or ``&``;
* ``<device id>,$GPRMC,...*hh`` (any talker: ``$GNRMC``, ``$GLRMC``...), checksum verified.

Field names match case-insensitively, ignoring ``_``, ``-``, spaces and accents,
through :data:`ALIASES`; every other field goes to ``attributes``. A line is
all or nothing: one bad report rejects the whole line with one reason.

Pure: no Twisted, no I/O; ``now`` is an argument.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from attrs import field, frozen

from waygps.events import Position

PROTOCOL = "generic"

DEVICE_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")

#: Canonical field -> the names senders use for it (compared after :func:`fold`).
ALIASES: Mapping[str, tuple[str, ...]] = {
    "id": ("imei", "id", "device_id", "deviceid"),
    "lat": ("lat", "latitude", "latitud"),
    "lon": ("lon", "lng", "longitude", "longitud"),
    "speed": ("speed", "spd", "velocidad"),
    "course": ("course", "hdg", "heading", "bearing", "rumbo"),
    "alt": ("alt", "altitude", "altitud"),
    "time": ("time", "timestamp", "fecha"),
    "ignition": ("ignition", "ign", "ignicion"),
    "battery": ("battery", "batt", "bateria"),
    "batteryVoltage": ("batteryvoltage", "battery_voltage", "batt_voltage", "vbat"),
    "valid": ("valid",),
    "event": ("event", "evento"),
    "satellites": ("satellites", "sat", "sats"),
    "hdop": ("hdop",),
}

SPEED_UNITS: Mapping[str, float] = {"kmh": 1.0, "knots": 1.852, "ms": 3.6}

#: Attribute names the driver sets itself; a sender's field of that name is overridden.
SERVER_ATTRIBUTES = ("format", "time_source")

MAX_FUTURE = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_TEXT = 256
MAX_EVENT = 40
INT64 = 2**63


class ReportError(Exception):
    """A report that cannot be stored; ``reason`` is a short snake_case word (a metric label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fold(name: str) -> str:
    """The form field names are compared in: lower case, no accents, no ``_ - space``."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s_\-]", "", plain.lower())


_CANONICAL = {fold(alias): canonical for canonical, aliases in ALIASES.items() for alias in aliases}


@frozen
class Record:
    """One report as the sender wrote it: its ``(name, value)`` pairs, before validation.

    ``speed_unit`` is set when the format itself fixes the unit (NMEA: knots;
    the Traccar Client JSON body: m/s); otherwise the listener's unit applies.
    """

    pairs: Sequence[tuple[str, Any]] = field(converter=tuple)
    raw: str
    format: str
    speed_unit: str | None = None


@frozen
class Settings:
    speed_unit: str = "kmh"
    #: Seconds: a report without a time re-sent within the same window maps to the same ``_id``.
    server_time_window: float = 60.0


# --- recognising a line -------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NMEA_START = re.compile(r"\s*\$")


def parse_line(text: str) -> list[Record]:
    """The reports of one line (without its terminator); raises :class:`ReportError`."""
    stripped = text.strip()
    if not stripped:
        raise ReportError("empty")
    if stripped[0] in "{[":
        return parse_json(stripped, stripped)
    _, comma, rest = stripped.partition(",")
    if stripped.startswith("$") or (comma and _NMEA_START.match(rest)):
        return [parse_nmea(stripped)]
    return [parse_pairs(stripped)]


def parse_pairs(text: str) -> Record:
    pairs: list[tuple[str, Any]] = []
    for part in re.split(r"[,;&]", text):
        part = part.strip()
        if not part:
            continue
        cut = min((i for i in (part.find("="), part.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise ReportError("unknown_format")
        pairs.append((part[:cut].strip(), part[cut + 1:].strip()))
    if not pairs:
        raise ReportError("unknown_format")
    return Record(pairs, raw=text, format="text")


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def load_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ReportError("bad_json") from None


def parse_json(text: str, raw: str) -> list[Record]:
    return records_from_json(load_json(text), raw)


def records_from_json(value: Any, raw: str) -> list[Record]:
    """Reports of a decoded JSON document: an object, or a non-empty array of objects."""
    if isinstance(value, dict):
        return _records_from_object(value, raw)
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        out: list[Record] = []
        for item in value:
            out.extend(_records_from_object(item, _compact(item)))
        return out
    raise ReportError("bad_json")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _records_from_object(obj: Mapping[str, Any], raw: str) -> list[Record]:
    location = obj.get("location")
    if isinstance(location, (dict, list)):
        return _traccar_client(obj, location, raw)
    return [Record(list(obj.items()), raw=raw, format="json")]


def _traccar_client(obj: Mapping[str, Any], location: Any, raw: str) -> list[Record]:
    """The Traccar Client body: ``coords`` speed in m/s, ``battery.level`` 0..1, -1 = unknown."""
    outer = [(k, v) for k, v in obj.items() if k != "location"]
    items = location if isinstance(location, list) else [location]
    if not items or not all(isinstance(item, dict) for item in items):
        raise ReportError("bad_json")
    records = []
    for item in items:
        pairs = list(outer)
        for key, value in item.items():
            if key == "coords" and isinstance(value, dict):
                for name, number in value.items():
                    if name in ("speed", "heading") and _is_number(number) and number < 0:
                        continue
                    pairs.append((name, number))
            elif key == "battery" and isinstance(value, dict):
                level = value.get("level")
                if _is_number(level) and 0 <= level <= 1:
                    pairs.append(("battery", round(level * 100, 1)))
                if "is_charging" in value:
                    pairs.append(("charging", value["is_charging"]))
            elif key == "activity" and isinstance(value, dict) and "type" in value:
                pairs.append(("activity", value["type"]))
            elif key == "extras" and isinstance(value, dict):
                pairs.extend(value.items())
            else:
                pairs.append((key, value))
        records.append(Record(pairs, raw=raw if len(items) == 1 else _compact(item), format="json",
                              speed_unit="ms"))
    return records


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_nmea(text: str) -> Record:
    """``<id>,$xxRMC,hhmmss.ss,A,ddmm.mmmm,N,dddmm.mmmm,W,knots,course,ddmmyy,...*hh``."""
    device, _, sentence = text.partition(",") if not text.startswith("$") else ("", "", text)
    sentence = sentence.strip()
    body, star, checksum = sentence[1:].partition("*")
    if not star:
        raise ReportError("missing_checksum")
    try:
        expected = int(checksum.strip(), 16)
    except ValueError:
        raise ReportError("bad_checksum") from None
    if len(checksum.strip()) != 2 or _xor(body) != expected:
        raise ReportError("bad_checksum")
    fields = body.split(",")
    if not re.fullmatch(r"[A-Z]{2}RMC", fields[0]):
        raise ReportError("unsupported_sentence")
    if len(fields) < 12:
        raise ReportError("bad_nmea")
    clock, status, lat, ns, lon, ew, knots, course, date = fields[1:10]
    mode = fields[12] if len(fields) > 12 else ""
    pairs: list[tuple[str, Any]] = [("id", device.strip())] if device.strip() else []
    if status not in ("A", "V"):
        raise ReportError("bad_nmea")
    pairs.append(("valid", status == "A" and mode != "N"))
    if lat or lon:
        pairs.append(("lat", _nmea_degrees(lat, ns, "NS", 2, "lat")))
        pairs.append(("lon", _nmea_degrees(lon, ew, "EW", 3, "lon")))
    if knots:
        pairs.append(("speed", knots))
    if course:
        pairs.append(("course", course))
    if clock or date:
        pairs.append(("time", _nmea_time(clock, date)))
    return Record(pairs, raw=text, format="nmea", speed_unit="knots")


def _xor(body: str) -> int:
    value = 0
    for char in body.encode("ascii", "replace"):
        value ^= char
    return value


def _nmea_degrees(value: str, hemisphere: str, allowed: str, width: int, name: str) -> float:
    if hemisphere not in allowed or not re.fullmatch(r"\d{%d}\d\d(\.\d+)?" % width, value):
        raise ReportError(f"bad_{name}")
    degrees = int(value[:width])
    minutes = float(value[width:])
    if minutes >= 60:
        raise ReportError(f"bad_{name}")
    result = degrees + minutes / 60
    return round(-result if hemisphere in "SW" else result, 7)


def _nmea_time(clock: str, date: str) -> datetime:
    match = re.fullmatch(r"(\d\d)(\d\d)(\d\d)(\.\d+)?", clock)
    if not match or not re.fullmatch(r"\d{6}", date):
        raise ReportError("bad_time")
    try:
        stamp = datetime(2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]), int(match[1]), int(match[2]),
                         int(match[3]), tzinfo=timezone.utc)
    except ValueError:
        raise ReportError("bad_time") from None
    fraction = float(match[4]) if match[4] else 0.0
    return stamp + timedelta(microseconds=round(fraction * 1_000_000))


# --- from a record to a Position -----------------------------------------------


def _device_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not DEVICE_ID.fullmatch(value.strip()):
        raise ReportError("bad_id")
    return value.strip()


def _fields(record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known fields by canonical name, and the rest (attributes) by sanitized name."""
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in record.pairs:
        if not isinstance(name, str):
            raise ReportError("bad_field_name")
        canonical = _CANONICAL.get(fold(name))
        if canonical is None:
            key = attribute_key(name)
            if key:
                extra[key] = value
            continue
        if canonical in known and _text(known[canonical]) != _text(value):
            raise ReportError("conflicting_fields")
        known[canonical] = value
    if len(extra) > MAX_ATTRIBUTES:
        raise ReportError("too_many_fields")
    return known, extra


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else repr(value)


def to_positions(records: Sequence[Record], now: datetime, settings: Settings) -> tuple[str, list[Position]]:
    """The device id and the positions of one line (or request); raises :class:`ReportError`.

    Every record must name the same device (``mixed_devices`` otherwise).
    """
    device: str | None = None
    positions = []
    for record in records:
        position = to_position(record, now, settings)
        if device is not None and position.imei != device:
            raise ReportError("mixed_devices")
        device = position.imei
        positions.append(position)
    if device is None:
        raise ReportError("empty")
    return device, positions


def to_position(record: Record, now: datetime, settings: Settings) -> Position:
    known, extra = _fields(record)
    if not _present(known, "id"):
        raise ReportError("missing_id")
    device = _device_id(known["id"])
    valid = _boolean(known["valid"], "valid") if "valid" in known else True
    lat = _number(known["lat"], "lat") if _present(known, "lat") else None
    lon = _number(known["lon"], "lon") if _present(known, "lon") else None
    if valid and lat is None:
        raise ReportError("missing_lat")
    if valid and lon is None:
        raise ReportError("missing_lon")
    if lat is not None and not -90 <= lat <= 90:
        raise ReportError("lat_out_of_range")
    if lon is not None and not -180 <= lon <= 180:
        raise ReportError("lon_out_of_range")
    unit = record.speed_unit or settings.speed_unit
    speed = None
    if _present(known, "speed"):
        speed = _number(known["speed"], "speed")
        if speed < 0:
            raise ReportError("bad_speed")
        speed = round(speed * SPEED_UNITS[unit], 3)
    course = None
    if _present(known, "course"):
        course = _number(known["course"], "course")
        if not 0 <= course <= 360:
            raise ReportError("bad_course")
    altitude = _number(known["alt"], "alt") if _present(known, "alt") else None
    ignition = _boolean(known["ignition"], "ignition") if _present(known, "ignition") else None
    satellites = None
    if _present(known, "satellites"):
        count = _number(known["satellites"], "satellites")
        if count < 0 or count != int(count) or count > 1000:
            raise ReportError("bad_satellites")
        satellites = int(count)
    hdop = None
    if _present(known, "hdop"):
        hdop = _number(known["hdop"], "hdop")
        if hdop < 0:
            raise ReportError("bad_hdop")
    event = _event(known.get("event"))
    textual = record.format not in ("json",)
    attributes = {key: clean_attribute(value, textual) for key, value in extra.items()}
    if _present(known, "battery"):
        # ``battery`` is a percentage in every driver; a value outside 0-100 is no percentage.
        level = _number(known["battery"], "battery")
        attributes["battery" if 0 <= level <= 100 else "battery_unknown_unit"] = level
    if _present(known, "batteryVoltage"):
        attributes["batteryVoltage"] = _number(known["batteryVoltage"], "batteryVoltage")
    attributes["format"] = record.format
    fix_time = parse_time(known["time"], now) if _present(known, "time") else None
    if fix_time is None:
        attributes["time_source"] = "server"
        key = _server_time_key(now, settings, (lat, lon, altitude, speed, course, ignition, satellites, hdop,
                                                valid, event, attributes))
    else:
        attributes.pop("time_source", None)
        key = f"{fix_time.isoformat(timespec='microseconds')}|{_coordinate(lat)}|{_coordinate(lon)}|{event}"
    return Position(
        imei=device, protocol=PROTOCOL, device_time=fix_time or now, server_time=now, event=event, key=key,
        valid=valid, latitude=lat, longitude=lon, altitude=altitude, speed=speed, course=course,
        satellites=satellites, hdop=hdop, ignition=ignition, attributes=attributes,
        raw=clean_text(record.raw),
    )


def _present(known: Mapping[str, Any], name: str) -> bool:
    value = known.get(name)
    return value is not None and value != ""


def _coordinate(value: float | None) -> str:
    return "-" if value is None else f"{value:.7f}"


def _server_time_key(now: datetime, settings: Settings, content: Any) -> str:
    """The key of a report without a time: its content and the receive-time window.

    The sender gave nothing that tells a re-send from a new report, so the
    same content within the same ``server_time_window`` is taken as one
    report (a re-send after a lost ``OK``); window 0 = every receipt is new.
    """
    digest = hashlib.blake2b(json.dumps(content, sort_keys=True, default=str).encode(), digest_size=8)
    stamp = now.timestamp()
    window = settings.server_time_window
    slot = f"{math.floor(stamp / window)}w{window:g}" if window > 0 else f"{stamp:.6f}"
    return f"server|{slot}|{digest.hexdigest()}"


def _event(value: Any) -> str:
    if value is None or value == "":
        return "position"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ReportError("bad_event")
    text = clean_text(str(value)).strip()[:MAX_EVENT]
    return text or "position"


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ReportError(f"bad_{name}")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise ReportError(f"bad_{name}") from None
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise ReportError(f"bad_{name}")
    if not math.isfinite(number):
        raise ReportError(f"bad_{name}")
    return number


_TRUE = frozenset({"1", "true", "on", "yes", "y", "si", "sí", "t"})
_FALSE = frozenset({"0", "false", "off", "no", "n", "f"})


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ReportError(f"bad_{name}")


_FRACTION = re.compile(r"(\.\d{6})\d+")
_SPACED_OFFSET = re.compile(r"(T?\d\d:\d\d(:\d\d(\.\d+)?)?) (\d\d:?\d\d)$")


def parse_time(value: Any, now: datetime) -> datetime:
    """ISO 8601 (naive = UTC), epoch seconds, or epoch milliseconds (values from 1e11 on)."""
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, bool):
        raise ReportError("bad_time")
    elif isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        number = _number(value, "time")
        if number >= 1e11:
            number /= 1000
        try:
            stamp = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=number)
        except OverflowError:
            raise ReportError("time_in_future" if number > 0 else "bad_time") from None
    elif isinstance(value, str):
        text = _FRACTION.sub(r"\1", value.strip())
        # "+03:00" in a query string arrives as " 03:00" ("+" means space in forms).
        text = _SPACED_OFFSET.sub(r"\1+\4", text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ReportError("bad_time") from None
    else:
        raise ReportError("bad_time")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    try:
        stamp = stamp.astimezone(timezone.utc)
    except OverflowError:
        raise ReportError("bad_time") from None
    if stamp > now + MAX_FUTURE:
        raise ReportError("time_in_future")
    if stamp < EARLIEST:
        raise ReportError("bad_time")
    return stamp


# --- attributes -------------------------------------------------------------------


def attribute_key(name: str) -> str:
    """A stable, MongoDB-safe attribute name: lower case ``[a-z0-9_]``, at most 64 characters."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9_]+", "_", plain).strip("_")[:MAX_ATTRIBUTE_KEY]


def clean_text(text: str) -> str:
    """Text that encodes to UTF-8 (a JSON ``\\ud800`` escape would fail the whole store batch)."""
    return text.encode("utf-8", "replace").decode("utf-8")


_INTEGER_TEXT = re.compile(r"-?(0|[1-9]\d{0,17})")
_DECIMAL_TEXT = re.compile(r"-?(0|[1-9]\d{0,17})\.\d{1,12}")


def clean_attribute(value: Any, numbers_in_text: bool = False, depth: int = 0) -> Any:
    """A value the store accepts: bounded text, 64-bit integers, finite floats, small nests.

    With ``numbers_in_text`` (``key=value`` lines, forms, where every value is
    text), a plain decimal number such as ``21.5`` becomes a number; ``007`` or
    ``+549...`` stay text.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = clean_text(value.strip())[:MAX_ATTRIBUTE_TEXT]
        if numbers_in_text:
            if _INTEGER_TEXT.fullmatch(text):
                return int(text)
            if _DECIMAL_TEXT.fullmatch(text):
                return float(text)
        return text
    if depth >= 3:
        text = _compact(value) if isinstance(value, (dict, list)) else str(value)
        return clean_text(text)[:MAX_ATTRIBUTE_TEXT]
    if isinstance(value, dict):
        out = {}
        for key, item in list(value.items())[:MAX_ATTRIBUTES]:
            name = attribute_key(str(key))
            if name:
                out[name] = clean_attribute(item, numbers_in_text, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [clean_attribute(item, numbers_in_text, depth + 1) for item in list(value)[:MAX_ATTRIBUTES]]
    return clean_text(str(value))[:MAX_ATTRIBUTE_TEXT]
