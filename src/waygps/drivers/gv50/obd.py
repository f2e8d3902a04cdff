"""Vehicle-bus data of GTCAN (CAN-bus report) and GTOBD / GTOER (OBD report).

Both reports announce their fields with a hex mask: a set bit means the
field is present, in bit order. The fields are read in that order until the
first bit whose field this module does not know; positions are found by
their shape afterwards (``shape.py``), so an unknown bit never costs a fix.
Values go under the attribute names of ``docs/attributes.md``. Nothing here
imports Twisted.
"""

from __future__ import annotations

from math import isfinite
from typing import Any, Callable

from waygps.drivers.gv50.parse import is_hex

Target = dict[str, Any]


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if isfinite(value) else None


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _signed(text: str) -> int | None:
    if text[:1] == "-":
        value = _int(text[1:])
        return -value if value is not None else None
    return _int(text)


def _prefixed(text: str) -> tuple[str, float | None]:
    """``H410120`` -> ("H", 410120.0); ``P83.60`` -> ("P", 83.6); ``L/H1.5`` -> ("L/H", 1.5)."""
    at = 0
    while at < len(text) and (text[at].isalpha() or text[at] == "/"):
        at += 1
    return text[:at].upper(), _float(text[at:]) if at < len(text) else None


def _put(target: Target, key: str, value: Any) -> None:
    if value is not None and value != "":
        target[key] = value


# --- GTCAN -------------------------------------------------------------------


def _can_distance(text: str, target: Target) -> None:
    unit, value = _prefixed(text)
    if value is None:
        return
    # "H": hectometres (units of 100 m); without a prefix: kilometres.
    _put(target, "obd_odometer_km", round(value / 10.0, 1) if unit == "H" else value)


def _can_fuel_level(text: str, target: Target) -> None:
    unit, value = _prefixed(text)
    if value is None:
        return
    if unit == "P":
        target["fuel_level_percent"] = value
    else:  # "L" or none: litres
        target["fuel_level_litres"] = value


def _can_consumption(text: str, target: Target) -> None:
    unit, value = _prefixed(text)
    if value is None:
        return
    target["fuel_consumption"] = value
    if unit:
        target["fuel_consumption_unit"] = unit


def _named(key: str, convert: Callable[[str], Any]) -> Callable[[str, Target], None]:
    def read(text: str, target: Target) -> None:
        _put(target, key, convert(text))
    return read


def _ignition_key(text: str, target: Target) -> None:
    value = _int(text)
    if value is not None:
        target["ignition_key"] = value


# Bit -> reader, in the order the fields appear (bit 5, RPM, comes before bit 4, speed).
CAN_FIELDS: tuple[tuple[int, Callable[[str, Target], None]], ...] = (
    (0, _named("vin", str.strip)),
    (1, _ignition_key),
    (2, _can_distance),
    (3, _named("fuel_used_litres", _float)),
    (5, _named("engine_rpm", _int)),
    (4, _named("obd_speed_kmh", _float)),
    (6, _named("coolant_temp_c", _signed)),
    (7, _can_consumption),
    (8, _can_fuel_level),
    (9, _named("range_km", _float)),
    (10, _named("throttle_percent", _int)),
    (11, _named("engine_hours", _float)),
    (12, _named("driving_hours", _float)),
    (13, _named("idle_hours", _float)),
    (14, _named("idle_fuel_litres", _float)),
    (15, _named("axle_weight_kg", _int)),
)
CAN_KNOWN = 0xFFFF  # bits 0-15 are read; the first other set bit below 30 stops the reading


def can_fields(fields: list[str], mask_at: int, target: Target) -> None:
    """Attributes of a GTCAN report whose mask is at ``mask_at``."""
    text = fields[mask_at]
    if not (1 <= len(text) <= 8 and is_hex(text)):
        return
    mask = int(text, 16)
    target["can_mask"] = text.upper()
    at = mask_at + 1
    stop = len(fields) - 2
    for bit, read in CAN_FIELDS:
        if at >= stop:
            return
        if mask >> bit & 1:
            read(fields[at], target)
            at += 1
    if "ignition_key" in target:
        target["ignition_key_on"] = target["ignition_key"] > 0


# --- GTOBD / GTOER -------------------------------------------------------------


def _obd_connected(text: str, target: Target) -> None:
    if text in ("0", "1"):
        target["obd_connected"] = text == "1"


def _millivolts(text: str, target: Target) -> None:
    value = _int(text)
    if value is not None:
        target["obd_power"] = value / 1000.0


def _mil(text: str, target: Target) -> None:
    if text in ("0", "1"):
        target["mil_on"] = text == "1"


OBD_FIELDS: tuple[tuple[int, Callable[[str, Target], None]], ...] = (
    (0, _named("vin", str.strip)),
    (1, _obd_connected),
    (2, _millivolts),
    (3, _named("obd_supported_pids", str.upper)),
    (4, _named("engine_rpm", _int)),
    (5, _named("obd_speed_kmh", _float)),
    (6, _named("coolant_temp_c", _signed)),
    (7, _named("fuel_consumption", _float)),
    (8, _named("dtc_cleared_km", _int)),
    (9, _named("mil_distance_km", _int)),
    (10, _mil),
    (11, _named("dtc_count", _int)),
    (12, _named("dtc_codes", str.strip)),
    (13, _named("throttle_percent", _int)),
    (14, _named("engine_load_percent", _int)),
    (15, _named("fuel_level_percent", _float)),
    (16, _named("obd_odometer_km", _float)),
)


def obd_fields(fields: list[str], mask_at: int, target: Target) -> None:
    """Attributes of a GTOBD / GTOER report whose OBD mask is at ``mask_at``."""
    text = fields[mask_at]
    if not (1 <= len(text) <= 8 and is_hex(text)):
        return
    mask = int(text, 16)
    target["obd_mask"] = text.upper()
    at = mask_at + 1
    stop = len(fields) - 2
    for bit, read in OBD_FIELDS:
        if at >= stop:
            return
        if mask >> bit & 1:
            read(fields[at], target)
            at += 1


def obd_mask_at(fields: list[str]) -> int | None:
    """Index of the OBD mask: 6 when a VIN and a name come first (GV500), else 5."""
    for at in (6, 5):
        text = fields[at] if at < len(fields) - 2 else ""
        if 6 <= len(text) <= 8 and is_hex(text):
            return at
    return None
