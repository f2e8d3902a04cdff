"""Teltonika I/O element IDs -> attribute names: data, meant to be extended.

One row per ID of the FMB/FMC/FMM family table (listed in docs/drivers/teltonika.md):
``IoSpec(id, name, size, divisor, signed, kind)``. ``size`` is the value size the
device uses (1, 2, 4, 8 bytes, or ``X`` for the variable-length NX group of
Codec 8 Extended). A value that arrives in a group of another size is not
this element (IDs differ between device families) and is kept raw as
``io<ID>``, like every ID not listed here, so nothing decoded is lost.

Kinds: ``int`` (raw / divisor when divisor > 1), ``bool`` (0/1), ``str``
(decimal digits, for 8-byte identifiers such as ICCIDs that exceed MongoDB's
int64), ``hex`` (16 hex digits of an 8-byte identifier, or hex of an NX blob),
``text`` (ASCII NX value).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from attrs import frozen

X = 0  # size marker of the variable-length NX group (Codec 8 Extended)


@frozen
class IoSpec:
    id: int
    name: str
    size: int
    divisor: int = 1
    signed: bool = False
    kind: str = "int"


TABLE: tuple[IoSpec, ...] = (
    # digital and analog inputs / outputs
    IoSpec(1, "din1", 1, kind="bool"),
    IoSpec(2, "din2", 1, kind="bool"),
    IoSpec(3, "din3", 1, kind="bool"),
    IoSpec(9, "adc1", 2, divisor=1000),
    IoSpec(6, "adc2", 2, divisor=1000),
    IoSpec(179, "dout1", 1, kind="bool"),
    IoSpec(180, "dout2", 1, kind="bool"),
    IoSpec(380, "dout3", 1, kind="bool"),
    # vehicle state
    IoSpec(239, "ignition", 1, kind="bool"),
    IoSpec(240, "movement", 1, kind="bool"),
    IoSpec(303, "instant_movement", 1, kind="bool"),
    IoSpec(24, "gnss_speed", 2),
    IoSpec(16, "odometer", 4),
    IoSpec(199, "trip_odometer", 4),
    IoSpec(250, "trip", 1),
    IoSpec(251, "idling", 1),
    # power
    IoSpec(66, "power", 2, divisor=1000),
    IoSpec(67, "batteryVoltage", 2, divisor=1000),  # volts; ``battery`` is the percentage (IO 113)
    IoSpec(68, "battery_current", 2, divisor=1000),
    IoSpec(113, "battery", 1),
    # GNSS and network
    IoSpec(69, "gnss_status", 1),
    IoSpec(181, "pdop", 2, divisor=10),
    IoSpec(182, "hdop", 2, divisor=10),
    IoSpec(21, "gsm_signal", 1),
    IoSpec(80, "data_mode", 1),
    IoSpec(200, "sleep_mode", 1),
    IoSpec(205, "gsm_cell_id", 2),
    IoSpec(206, "gsm_area_code", 2),
    IoSpec(636, "lte_cell_id", 4),
    IoSpec(241, "gsm_operator", 4),
    IoSpec(11, "iccid1", 8, kind="str"),
    IoSpec(14, "iccid2", 8, kind="str"),
    IoSpec(10, "sd_status", 1),
    # accelerometer, driving behaviour, alarms
    IoSpec(17, "axis_x", 2, signed=True),
    IoSpec(18, "axis_y", 2, signed=True),
    IoSpec(19, "axis_z", 2, signed=True),
    IoSpec(253, "green_driving_type", 1),
    IoSpec(254, "green_driving_value", 1, divisor=100),
    IoSpec(255, "over_speeding", 1),
    IoSpec(246, "towing", 1),
    IoSpec(247, "crash_detection", 1),
    IoSpec(248, "immobilizer", 1),
    IoSpec(249, "jamming", 1),
    IoSpec(252, "unplug", 1),
    IoSpec(236, "alarm", 1),
    IoSpec(175, "auto_geofence", 1),
    IoSpec(155, "geofence_zone1", 1),
    # identification and sensors
    IoSpec(78, "ibutton", 8, kind="hex"),
    IoSpec(207, "rfid", 8, kind="hex"),
    IoSpec(72, "dallas_temp1", 4, divisor=10, signed=True),
    IoSpec(73, "dallas_temp2", 4, divisor=10, signed=True),
    IoSpec(74, "dallas_temp3", 4, divisor=10, signed=True),
    IoSpec(75, "dallas_temp4", 4, divisor=10, signed=True),
    IoSpec(76, "dallas_id1", 8, kind="hex"),
    IoSpec(77, "dallas_id2", 8, kind="hex"),
    IoSpec(79, "dallas_id3", 8, kind="hex"),
    IoSpec(71, "dallas_id4", 8, kind="hex"),
    IoSpec(25, "ble_temp1", 2, divisor=100, signed=True),
    IoSpec(26, "ble_temp2", 2, divisor=100, signed=True),
    IoSpec(27, "ble_temp3", 2, divisor=100, signed=True),
    IoSpec(28, "ble_temp4", 2, divisor=100, signed=True),
    IoSpec(12, "fuel_used_gps", 4, divisor=1000),
    IoSpec(13, "fuel_rate_gps", 2, divisor=100),
    # OBD / CAN
    IoSpec(30, "obd_dtc_count", 1),
    IoSpec(31, "obd_engine_load", 1),
    IoSpec(32, "obd_coolant_temp", 1, signed=True),
    IoSpec(36, "obd_rpm", 2),
    IoSpec(37, "obd_speed", 1),
    IoSpec(48, "obd_fuel_level", 1),
    IoSpec(81, "can_speed", 1),
    IoSpec(82, "can_accelerator_pedal", 1),
    IoSpec(83, "can_fuel_consumed", 4, divisor=10),
    IoSpec(84, "can_fuel_level_litres", 2, divisor=10),
    IoSpec(85, "can_rpm", 2),
    IoSpec(87, "can_total_mileage", 4),
    IoSpec(89, "can_fuel_level", 1),
    IoSpec(389, "obd_oem_total_mileage", 4),
    IoSpec(390, "obd_oem_fuel_level", 4, divisor=10),
    # variable length (Codec 8 Extended NX group)
    IoSpec(256, "vin", X, kind="text"),
    IoSpec(281, "dtc", X, kind="text"),
    IoSpec(385, "beacons", X, kind="hex"),
    IoSpec(548, "ble_beacons", X, kind="hex"),
)

INT64_MAX = (1 << 63) - 1

Converter = Callable[[Any], Any]


def _converter(spec: IoSpec) -> Converter | None:
    """The function turning the raw value into the attribute value (None = raw as is)."""
    if spec.size == X:
        if spec.kind == "text":
            return lambda raw: raw.decode("ascii", "backslashreplace")
        return bytes.hex
    if spec.kind == "bool":
        return bool
    if spec.kind == "str":
        return str
    if spec.kind == "hex":
        return lambda raw, _n=spec.size * 2: format(raw, f"0{_n}x")
    if spec.signed:
        half, full = 1 << (spec.size * 8 - 1), 1 << (spec.size * 8)
        if spec.divisor > 1:
            return lambda raw, d=spec.divisor: (raw - full if raw >= half else raw) / d
        return lambda raw: raw - full if raw >= half else raw
    if spec.divisor > 1:
        return lambda raw, d=spec.divisor: raw / d
    return None


def build(table: tuple[IoSpec, ...]) -> Mapping[int, Mapping[int, tuple[str, Converter | None]]]:
    """``{size: {id: (name, converter)}}`` for sizes 1, 2, 4, 8 and ``X``: one dict lookup per element."""
    out: dict[int, dict[int, tuple[str, Converter | None]]] = {1: {}, 2: {}, 4: {}, 8: {}, X: {}}
    for spec in table:
        if spec.size not in out:
            raise ValueError(f"IO {spec.id}: size {spec.size} is not 1, 2, 4, 8 or X")
        if spec.id in out[spec.size]:
            raise ValueError(f"IO {spec.id}: listed twice")
        out[spec.size][spec.id] = (spec.name, _converter(spec))
    return out


class _UnknownNames(dict):
    """``io<ID>`` names, made once per ID on first use."""

    def __missing__(self, key: int) -> str:
        name = self[key] = f"io{key}"
        return name


NAMES = build(TABLE)
UNKNOWN = _UnknownNames()

__all__ = ["INT64_MAX", "IoSpec", "NAMES", "TABLE", "UNKNOWN", "X", "build"]
