"""Message layouts of ``+RESP`` / ``+BUFF`` reports (protocol document §2.4-§3.11).

``decode_report(frame)`` returns a :class:`Report`: the position blocks, the
attributes of the frame, ignition and alarm. Layouts are read from the head
and, where firmware variants add fields, checked against the tail (send time
and count are always the last two fields), so sibling @Track models decode
too. Nothing here imports Twisted.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import Any, Callable

from waygps.drivers.gv50.models import model_name
from waygps.drivers.gv50 import obd
from waygps.drivers.gv50.parse import HEX_DIGITS, Frame, FrameError, device_type, is_digits, is_hex, parse_time
from waygps.drivers.gv50.shape import NO_CELL, access_points, next_block

BLOCK = 12  # fields of a position block without appended fields
_from_iso = datetime.fromisoformat


# A position block (§2.4) is a tuple, in this order (tuples are cheap; a report may hold 15):
# (index, accuracy, speed, course, altitude, longitude, latitude, time, time_raw,
#  cell (dict of mcc/mnc/lac/cell_id, shared: read only), satellites, trigger, mileage)
# ``time`` is None when the block has no fix time; longitude/latitude are None without coordinates.
Block = tuple


class Report:
    """What one report says, before it becomes events."""

    __slots__ = ("blocks", "invalid", "common", "tail", "ignition", "tail_ignition", "alarm", "known", "flags")

    def __init__(self, common: dict[str, Any]) -> None:
        self.blocks: list[Block] = []  # well-formed blocks, in frame order
        self.invalid: list[str] = []  # why blocks were dropped (out-of-range values)
        self.common = common  # attributes of every position of the frame
        self.tail: dict[str, Any] = {}  # attributes of the last position only (state at send time)
        self.ignition: bool | None = None  # from the message type: every position
        self.tail_ignition: bool | None = None  # from the device status: the last position
        self.alarm: tuple[str, str] | None = None  # (alarm name, message)
        self.known = True  # False: no layout for this message type and no block found by shape
        self.flags: list[str] = []  # oddities of a report that was still decoded (Flagged by the codec)


# --- field helpers -----------------------------------------------------------


def _num(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    if not isfinite(value):
        raise ValueError(text)
    return value


MAX_DIGITS = 18  # longer decimal fields are no @Track value (and would not fit BSON's int64)
MAX_ACCURACY = 999  # GPS accuracy is 0-50; anything above this is not one


def _int(text: str) -> int | None:
    return int(text) if text and len(text) <= MAX_DIGITS and is_digits(text) else None


def accuracy_value(text: str) -> int | None:
    """GPS accuracy of a block (empty: unknown); ValueError when it is not a plausible one."""
    if not text:
        return None
    value = int(text)
    if not 0 <= value <= MAX_ACCURACY:
        raise ValueError(f"GPS accuracy {text[:8]!r} out of range")
    return value


def _hex(text: str) -> int | None:
    return int(text, 16) if is_hex(text) else None


def _percent(text: str) -> int | None:
    value = _int(text)
    return value if value is not None and value <= 100 else None


def _volts_from_mv(text: str) -> float | None:
    value = _int(text)
    return value / 1000.0 if value is not None else None


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        target[key] = value


def ignition_from_state(code: str) -> bool | None:
    """Motion/ignition state ``MM`` (§2.6): 1x off, 2x on, 4x (no ignition wire) unknown."""
    if len(code) >= 2:
        first = code[0]
        if first == "1":
            return False
        if first == "2":
            return True
    return None


_MOTION = {"11": False, "12": True, "16": True, "21": False, "22": True, "41": False, "42": True}


def _state_attributes(code: str, target: dict[str, Any]) -> None:
    code = code.upper()
    target["state"] = code
    moving = _MOTION.get(code[:2])
    if moving is not None:
        target["motion"] = moving
    if code[:2] == "16":
        target["towed"] = True


_STATUS: dict[str, tuple[dict[str, Any], bool | None]] = {}


def _status(text: str, report: Report, target: dict[str, Any]) -> None:
    """Device status ``MMIIOO`` (or 10 chars with an IO expander); memoised, statuses repeat."""
    known = _STATUS.get(text)
    if known is None:
        if len(text) < 6 or not is_hex(text):
            _put(target, "device_status", text or None)
            return
        decoded: dict[str, Any] = {"device_status": text.upper()}
        _state_attributes(text[:2], decoded)
        inputs, outputs = int(text[2:4], 16), int(text[4:6], 16)
        decoded["digital_inputs"] = inputs
        decoded["digital_outputs"] = outputs
        decoded["input_1"] = bool(inputs & 0x02)
        decoded["output_1"] = bool(outputs & 0x01)
        known = (decoded, ignition_from_state(text))
        if len(_STATUS) >= 1024:
            _STATUS.clear()
        _STATUS[text] = known
    target.update(known[0])
    report.tail_ignition = known[1]


# Report ID / type byte (§2.5), two hex characters in any case -> (ID, type); parsed as hex, never decimal.
REPORT_BYTES: dict[str, tuple[int, int]] = {
    high + low: (int(high, 16), int(low, 16)) for high in HEX_DIGITS for low in HEX_DIGITS
}


# --- position blocks -----------------------------------------------------------


_CELLS: dict[tuple[str, str, str, str], dict[str, int]] = {}


def cell_info(mcc: str, mnc: str, lac: str, cell: str) -> dict[str, int]:
    """Serving-cell attributes of a block (MCC/MNC decimal, LAC/cell ID hex); ValueError if malformed.

    Memoised (a device stays in a cell for many reports): callers must not modify the result.
    """
    key = (mcc, mnc, lac, cell)
    out = _CELLS.get(key)
    if out is None:
        if len(mcc) > 8 or len(mnc) > 8 or len(lac) > 8 or len(cell) > 15:
            raise ValueError("cell information too long")  # LAC is 4 hex digits, a cell ID at most 8
        out = {}
        if mcc:
            out["mcc"] = int(mcc)
        if mnc:
            out["mnc"] = int(mnc)
        if lac:
            out["lac"] = int(lac, 16)
        if cell:
            out["cell_id"] = int(cell, 16)
        if len(_CELLS) >= 4096:
            _CELLS.clear()
        _CELLS[key] = out
    return out


def _block(fields: list[str], start: int, index: int, report: Report, cell_at: int = -1) -> int:
    """Parse the block at ``start``; return the index after it. Out-of-range blocks are dropped.

    ``cell_at`` (blocks found by their shape): where the cell part starts when it does not follow
    the fix time directly (Wi-Fi access points between them), ``shape.NO_CELL`` when there is none.
    """
    if cell_at < 0:
        end = start + BLOCK
        if end > len(fields) - 2:
            raise FrameError("truncated", f"position block {index} runs into the trailer")
        (accuracy, speed, course, altitude, lon, lat, when, mcc, mnc, lac, cell,
         mask_text) = fields[start:end]
    else:
        accuracy, speed, course, altitude, lon, lat, when = fields[start:start + 7]
        if cell_at == NO_CELL:
            mcc = mnc = lac = cell = mask_text = ""
            end = start + 7
        else:
            mcc, mnc, lac, cell, mask_text = fields[cell_at:cell_at + 5]
            end = cell_at + 5
    satellites = trigger = mileage = None
    try:
        if mask_text and mask_text != "00":
            if len(mask_text) == 2 and is_hex(mask_text):
                # Position append mask: bit 0 -> satellites follow, bit 1 -> GNSS trigger type.
                mask = int(mask_text, 16)
                if mask & 3:
                    extra = end
                    end += (mask & 1) + ((mask >> 1) & 1)
                    if end > len(fields) - 2:
                        raise FrameError("truncated", f"position block {index} runs into the trailer")
                    if mask & 1:
                        satellites = _int(fields[extra])
                        extra += 1
                    if mask & 2:
                        trigger = fields[extra] or None
            elif "." in mask_text:
                mileage = _num(mask_text)  # GL300 firmware writes the mileage here
        speed_v = float(speed) if speed else None
        course_v = float(course) if course else None
        altitude_v = float(altitude) if altitude else None
        if lon and lat:
            lon_v = float(lon)
            lat_v = float(lat)
            if not (-180.0 <= lon_v <= 180.0 and -90.0 <= lat_v <= 90.0):
                raise ValueError("coordinates out of range")
            if when:
                if len(when) != 14 or not when.isdigit() or not when.isascii():
                    raise ValueError(f"bad time {when[:16]!r}")
                time_v = _from_iso(f"{when[0:4]}-{when[4:6]}-{when[6:8]}T{when[8:10]}:{when[10:12]}:"
                                   f"{when[12:14]}+00:00")
            else:
                time_v = None
        else:
            lon_v = lat_v = time_v = None  # a fix time without coordinates is no fix
            if when:
                parse_time(when)
        # x - x is 0.0 for every finite float, NaN for inf and nan.
        if ((speed_v is not None and speed_v - speed_v) or (course_v is not None and course_v - course_v)
                or (altitude_v is not None and altitude_v - altitude_v)):
            raise ValueError("not a finite number")
        report.blocks.append((
            index, accuracy_value(accuracy), speed_v, course_v, altitude_v, lon_v, lat_v,
            time_v, when, cell_info(mcc, mnc, lac, cell), satellites, trigger, mileage,
        ))
    except ValueError as e:
        if isinstance(e, FrameError):
            raise
        report.invalid.append(f"block {index}: {e}")
    return end


def _blocks(fields: list[str], start: int, count: int, report: Report) -> int:
    index = start
    for number in range(count):
        index = _block(fields, index, number, report)
    return index


def _plausible(fields: list[str], start: int) -> bool:
    """A block can start at ``start``: its fix-time slot is a time or empty, nothing overruns."""
    if start < 4 or start + BLOCK > len(fields) - 2:
        return False
    when = fields[start + 6]
    return not when or (len(when) == 14 and is_digits(when))


def _locate(fields: list[str], head: int, tail: int) -> int:
    """Start of a single block: at ``head`` from the front, else ``tail`` fields before the trailer."""
    if _plausible(fields, head):
        return head
    for extra in (0, 1, 2):
        start = len(fields) - 2 - tail - BLOCK - extra
        if start != head and _plausible(fields, start):
            return start
    raise FrameError("layout", "no position block where this message type has one")


def _counted(fields: list[str], number_at: int) -> int | None:
    """Blocks announced at ``number_at`` when they fit and the first one looks like a block."""
    if number_at >= len(fields):
        return None
    text = fields[number_at]
    if not (0 < len(text) <= 2 and text.isdigit() and text.isascii()):
        return None
    count = int(text)
    if not 1 <= count <= 15 or number_at + 1 + BLOCK * count > len(fields) - 2:
        return None
    when = fields[number_at + 7]
    return count if not when or (len(when) == 14 and when.isdigit()) else None


# --- layouts ---------------------------------------------------------------------


def _located(frame: Frame, report: Report, first: int) -> tuple[int, bool, int]:
    """Head of GTFRI-like reports: returns (end of blocks, GL layout?, shift for a VIN).

    ``first`` is the index of the power/report-ID field (4; 5 for GTERI). GV500
    units put a VIN at index 3 and shift everything by one; GL200/GL300 units
    write report ID and type as two one-digit fields and have no power field.
    """
    fields = frame.fields
    shift = 0
    count = _counted(fields, first + 2)
    if count is None:
        shift = 1
        count = _counted(fields, first + 3)
        if count is None:
            raise FrameError("layout", "number of position blocks not found")
        common = report.common
        common.pop("device_name", None)
        _put(common, "vin", fields[3])
        _put(common, "device_name", fields[4])
    power, kind = fields[first + shift], fields[first + 1 + shift]
    gl = len(kind) == 1
    if gl:
        _put(report.common, "report_id", _int(power))
        _put(report.common, "report_type", _int(kind))
    else:
        byte = REPORT_BYTES.get(kind)
        if byte is not None:
            report.common["report_id"], report.common["report_type"] = byte
        if power:
            _put(report.tail, "power", _volts_from_mv(power))
    start = first + 3 + shift
    if count == 1:
        return _block(fields, start, 0, report), gl, shift
    return _blocks(fields, start, count, report), gl, shift


def _one_trailing(text: str, report: Report) -> None:
    """GL-style reports end with one field: mileage when it has a decimal point, else battery %."""
    if "." in text:
        _put(report.tail, "mileage_km", _num(text))
    else:
        _put(report.tail, "battery", _percent(text))


def _fri(frame: Frame, report: Report) -> None:
    fields = frame.fields
    k, gl, shift = _located(frame, report, 4)
    _fri_tail(fields, k, gl, shift, report)


def _fri_tail(fields: list[str], k: int, gl: bool, shift: int, report: Report) -> None:
    rest = len(fields) - 2 - k
    if gl or rest < 6:
        if rest >= 1:
            _one_trailing(fields[k], report)
        return
    tail = report.tail
    mileage, hours, analog = fields[k:k + 3]
    if mileage:
        tail["mileage_km"] = _num(mileage)
    if hours:
        tail["hour_meter"] = hours
    if analog:
        _put(tail, "analog_input_mv", _int(analog))
    # Backup battery and status from the end: 10-character-version firmware adds a field before them.
    battery = fields[-7]
    if battery and battery.isdigit() and len(battery) <= 3:
        value = int(battery)
        if value <= 100:
            tail["battery"] = value
    _status(fields[-6], report, tail)
    if shift and rest >= 9:  # GV500 (VIN layout): engine data after the status
        _put(tail, "engine_rpm", _int(fields[k + 6]))
        _put(tail, "fuel_consumption", _num(fields[k + 7]))
        _put(tail, "fuel_level_percent", _percent(fields[k + 8]))


def _eri(frame: Frame, report: Report) -> None:
    fields = frame.fields
    _put(report.common, "eri_mask", fields[4])
    k, gl, shift = _located(frame, report, 5)
    if gl or len(fields) - 2 - k < 6:
        _fri_tail(fields, k, gl, shift, report)
        return
    tail = report.tail
    _put(tail, "mileage_km", _num(fields[k]))
    _put(tail, "hour_meter", fields[k + 1])
    _put(tail, "analog_input_mv", _int(fields[k + 2]))
    _put(tail, "battery", _percent(fields[k + 4]))
    _status(fields[k + 5], report, tail)
    mask = _hex(fields[4])
    if mask is not None and mask & 0x02 and not mask & 0x01:
        _one_wire(fields, k + 6, tail)


def _one_wire(fields: list[str], at: int, tail: dict[str, Any]) -> None:
    """1-Wire block of GTERI: UART device type, sensor count, then (ID, type, data) per sensor."""
    stop = len(fields) - 2
    count = _int(fields[at + 1]) if at + 1 < stop else None
    if count is None or at + 2 + 3 * count > stop:
        return
    for number in range(count):
        sensor, kind, data = fields[at + 2 + 3 * number: at + 5 + 3 * number]
        n = number + 1
        _put(tail, f"onewire_id_{n}", sensor)
        _put(tail, f"onewire_type_{n}", _int(kind))
        if kind == "1" and len(data) == 4 and is_hex(data):
            raw = int(data, 16)
            if raw & 0x8000:
                raw -= 0x10000
            tail[f"temperature_{n}"] = raw * 0.0625


def _generic(frame: Frame, report: Report) -> None:
    """GTGEO, GTSPD, GTSOS, GTRTL, GTDOG, GTIGL, GTHBM, GTTOW, GTDIS, GTIOB (§3.3)."""
    fields = frame.fields
    k, gl, _ = _located(frame, report, 4)
    if k < len(fields) - 2:
        if gl:
            _one_trailing(fields[k], report)
        else:
            _put(report.tail, "mileage_km", _num(fields[k]))


def _single(head: int, tail: int) -> Callable[[Frame, Report], int]:
    def parse(frame: Frame, report: Report) -> int:
        return _block(frame.fields, _locate(frame.fields, head, tail), 0, report)
    return parse


_block_at_5_no_tail = _single(5, 0)
_block_at_5_tail_1 = _single(5, 1)
_block_at_5_tail_2 = _single(5, 2)


def _ign(frame: Frame, report: Report) -> None:
    """GTIGN/GTIGF/GTVGN/GTVGF: previous-state duration, block, hour meter, mileage (§3.4)."""
    fields = frame.fields
    _put(report.common, "previous_state_seconds", _int(fields[4]))
    k = _block_at_5_tail_2(frame, report)
    if k < len(fields) - 2:
        _put(report.tail, "hour_meter", fields[k])
    if k + 1 < len(fields) - 2:
        _put(report.tail, "mileage_km", _num(fields[k + 1]))
    report.ignition = frame.type in ("GTIGN", "GTVGN")


def _stt(frame: Frame, report: Report) -> None:
    state = frame.fields[4]
    _state_attributes(state, report.common)
    report.ignition = ignition_from_state(state)
    _block_at_5_no_tail(frame, report)


def _bpl(frame: Frame, report: Report) -> None:
    try:
        _put(report.common, "batteryVoltage", _num(frame.fields[4]))
    except ValueError:
        pass
    _block_at_5_no_tail(frame, report)


def _lbc(frame: Frame, report: Report) -> None:
    fields = frame.fields
    _put(report.common, "caller_number", fields[4])
    k = _block_at_5_tail_1(frame, report)
    if k < len(fields) - 2:
        _one_trailing(fields[k], report)


_block_at_4 = _single(4, 0)


def _power(frame: Frame, report: Report) -> None:
    """GTMPN family: one block at 4 (§3.7)."""
    _block_at_4(frame, report)


def _no_position(frame: Frame, report: Report) -> None:
    """GTPNA / GTPFA / GTPDP: send time and count only; newer firmware adds fields (§3.8)."""


def _ida(frame: Frame, report: Report) -> None:
    fields = frame.fields
    _put(report.common, "driver_id", fields[5])
    _put(report.common, "report_type", _int(fields[6]))
    count = _counted(fields, 7) or 1
    k = _blocks(fields, 8, count, report)
    if k < len(fields) - 2:
        _put(report.tail, "mileage_km", _num(fields[k]))


def _inf(frame: Frame, report: Report) -> None:
    """GTINF device information, GV300 layout (§3.10); no position."""
    fields = frame.fields
    common = report.common
    n = len(fields)
    state = fields[4]
    if len(state) == 2 and is_hex(state):
        _state_attributes(state, common)
        report.ignition = ignition_from_state(state)
    if n < 15:
        return
    _put(common, "iccid", fields[5])
    _put(common, "rssi", _int(fields[6]))
    _put(common, "ber", _int(fields[7]))
    if fields[8] in ("0", "1"):
        common["power_connected"] = fields[8] == "1"
    _put(common, "power", _volts_from_mv(fields[9]))
    try:
        _put(common, "batteryVoltage", _num(fields[11]))
    except ValueError:
        pass
    if fields[12] in ("0", "1"):
        common["charging"] = fields[12] == "1"
    if n >= 21:
        try:
            common["last_fix_time"] = parse_time(fields[16]).isoformat().replace("+00:00", "Z")
        except ValueError:
            pass
    zone = fields[-4]
    if len(zone) == 5 and zone[0] in "+-" and zone[1:].isdigit():
        common["time_zone"] = zone
        if fields[-3] in ("0", "1"):
            common["daylight_saving"] = fields[-3] == "1"


def _ver(frame: Frame, report: Report) -> None:
    """GTVER: device type name, firmware and hardware version as 4 hex digits (§3.11)."""
    fields = frame.fields
    if len(fields) < 9:
        return
    _put(report.common, "device_model", fields[4])
    for key, text in (("firmware_version", fields[5]), ("hardware_version", fields[6])):
        if len(text) == 4 and is_hex(text):
            report.common[key] = f"{int(text[:2], 16)}.{text[2:]}"


def _unknown(frame: Frame, report: Report) -> None:
    report.known = False


# --- blocks found by their shape ---------------------------------------------------

SHAPE = "decoded_by_shape"  # flag: a report type without a field-by-field layout gave its blocks by shape


def by_shape(fields: list[str], start: int, report: Report) -> int:
    """Parse every block found by its shape from ``start``; return the index after the last one.

    Blocks that follow one another are numbered in frame order like counted
    blocks; Wi-Fi access points before a block's cell part are kept as an
    attribute and flagged.
    """
    stop = len(fields) - 2
    at = start
    number = 0
    while True:
        found = next_block(fields, at, stop)
        if found is None:
            return at
        core, cell_at, wifi = found
        if wifi:
            if "wifi_blocks" not in report.flags:
                report.flags.append("wifi_blocks")
            report.common["wifi_access_points"] = access_points(fields, core, wifi)
        at = _block(fields, core, number, report, cell_at)
        number += 1


def _trailing_one(fields: list[str], k: int, report: Report) -> None:
    """One field between the last block and the trailer: GL battery % or mileage."""
    if k == len(fields) - 3:
        text = fields[k]
        if text and len(text) <= 10:
            try:
                _one_trailing(text, report)
            except ValueError:
                pass


def _shaped(start: int, named: Callable[[list[str], Report], None] | None = None
            ) -> Callable[[Frame, Report], None]:
    """A report type whose blocks are found by shape from ``start``, with ``named`` fields before them."""
    def parse(frame: Frame, report: Report) -> None:
        fields = frame.fields
        if named is not None:
            named(fields, report)
        _trailing_one(fields, by_shape(fields, start, report), report)
    return parse


def _field(at: int, key: str, convert: Callable[[str], Any] = str) -> Callable[[list[str], Report], None]:
    def named(fields: list[str], report: Report) -> None:
        if at < len(fields) - 2 and fields[at]:
            try:
                _put(report.common, key, convert(fields[at]))
            except ValueError:
                pass
    return named


def _fields(*readers: Callable[[list[str], Report], None]) -> Callable[[list[str], Report], None]:
    def named(fields: list[str], report: Report) -> None:
        for read in readers:
            read(fields, report)
    return named


def _can(frame: Frame, report: Report) -> None:
    """GTCAN: 4 report type, 5 CAN-bus state, 6 mask, then the fields the mask selects (obd.py)."""
    fields = frame.fields
    _put(report.common, "report_type", _int(fields[4]))
    obd.can_fields(fields, 6, report.common)
    k = by_shape(fields, 7, report)
    if "ignition_key_on" in report.common:
        report.ignition = report.common["ignition_key_on"]
    _trailing_one(fields, k, report)


def _obd(frame: Frame, report: Report) -> None:
    """GTOBD / GTOER: [VIN, name,] report type, OBD mask, masked fields, block, mileage."""
    fields = frame.fields
    at = obd.obd_mask_at(fields)
    if at is None:
        _trailing_one(fields, by_shape(fields, 4, report), report)
        return
    if at == 6:
        common = report.common
        common.pop("device_name", None)
        _put(common, "vin", fields[3])
        _put(common, "device_name", fields[4])
    _put(report.common, "report_type", _int(fields[at - 1]))
    obd.obd_fields(fields, at, report.common)
    _trailing_one(fields, by_shape(fields, at + 1, report), report)


def _dat(frame: Frame, report: Report) -> None:
    """GTDAT: transparent data from a serial accessory before the block (kept as text)."""
    fields = frame.fields
    _put(report.common, "report_type", _int(fields[4]))
    found = next_block(fields, 5, len(fields) - 2)
    end = found[0] if found is not None else len(fields) - 2
    data = ",".join(fields[5:end]).strip(",")
    if data:
        report.common["serial_data"] = data[:512]
    by_shape(fields, 5, report)


def _gl500_head(fields: list[str], report: Report) -> None:
    """GL500 / GL530 layout: 4 report ID, 5 report type, 6 reserved, 7 temperature, 8 battery %."""
    common = report.common
    _put(common, "report_id", _int(fields[4]))
    _put(common, "report_type", _int(fields[5]))
    found = next_block(fields, 4, len(fields) - 2)
    if found is not None and found[0] == 9 or (found is None and len(fields) > 11):
        try:
            _put(common, "device_temperature_c", _num(fields[7]))
        except ValueError:
            pass
        _put(common, "battery", _percent(fields[8]))


def _accessory(mask_at: int) -> Callable[[list[str], Report], None]:
    """GTBAA / GTBID: Bluetooth accessory; the append mask selects name, MAC, status, voltage (mV)."""
    def named(fields: list[str], report: Report) -> None:
        common = report.common
        text = fields[mask_at] if mask_at < len(fields) - 2 else ""
        if not (len(text) == 4 and is_hex(text)):
            return
        mask = int(text, 16)
        at = mask_at + 1
        for bit, key in ((0, "accessory_name"), (1, "accessory_mac"), (2, "accessory_status"),
                         (3, "accessory_voltage")):
            if mask >> bit & 1 and at < len(fields) - 2:
                value = fields[at]
                if key == "accessory_voltage":
                    _put(common, key, _volts_from_mv(value))
                else:
                    _put(common, key, value)
                at += 1
    return named


LAYOUTS: dict[str, Callable[[Frame, Report], Any]] = {
    "GTFRI": _fri,
    "GTERI": _eri,
    "GTIGN": _ign, "GTIGF": _ign, "GTVGN": _ign, "GTVGF": _ign,
    "GTSTT": _stt,
    "GTBPL": _bpl,
    "GTLBC": _lbc,
    "GTIDA": _ida,
    "GTINF": _inf,
    "GTVER": _ver,
    "GTPNA": _no_position, "GTPFA": _no_position, "GTPDP": _no_position,
}
for _name in ("GTGEO", "GTSPD", "GTSOS", "GTRTL", "GTDOG", "GTIGL", "GTVGL", "GTHBM", "GTTOW", "GTDIS",
              "GTIOB"):
    LAYOUTS[_name] = _generic
for _name in ("GTMPN", "GTMPF", "GTEPN", "GTEPF", "GTBTC", "GTSTC", "GTJDR"):
    LAYOUTS[_name] = _power
# Report types read by shape: the named fields are the ones whose place is known; the blocks are
# found wherever the model puts them (docs/drivers/gv50.md lists the layouts).
LAYOUTS.update({
    "GTCAN": _can,
    "GTOBD": _obd, "GTOER": _obd,
    "GTDAT": _dat,
    "GTNMR": _shaped(4, _field(5, "report_type", int)),
    "GTSTR": _shaped(4, _gl500_head), "GTSTP": _shaped(4, _gl500_head), "GTLSP": _shaped(4, _gl500_head),
    "GTCTN": _shaped(4, _gl500_head),
    "GTLSW": _shaped(4, _field(5, "switch_state", int)), "GTTSW": _shaped(4, _field(5, "switch_state", int)),
    "GTBAA": _shaped(4, _fields(_field(4, "accessory_index"), _field(5, "accessory_type", int),
                                _field(7, "alarm_type"), _accessory(8))),
    "GTBID": _shaped(4, _fields(_field(5, "accessory_type", int), _accessory(6))),
    "GTDAR": _shaped(4, _field(4, "warning_type", int)),
    "GTTRI": _shaped(3),
    "GTSWG": _shaped(4, _field(4, "geofence_active", int)),
    "GTTMP": _shaped(4, _field(4, "temperature_alarm", int)),
    "GTTEM": _shaped(4, _field(4, "temperature_alarm", int)),
    "GTJDS": _shaped(4, _field(4, "jamming_state", int)),
    "GTGCR": _shaped(4),
    "GTEPS": _shaped(4, _field(4, "power", lambda text: int(text) / 1000.0)),
    "GTAIS": _shaped(4, _field(4, "analog_input_mv", int)),
    "GTIDN": _shaped(4), "GTIDF": _shaped(4),
    "GTCRA": _shaped(4, _field(4, "crash_counter", int)),
})


# --- meaning: ignition of GTIGL, alarms ------------------------------------------

_HARSH = {0: "harsh_braking", 1: "harsh_acceleration", 2: "harsh_cornering"}


_PLAIN = frozenset(("GTFRI", "GTERI", "GTIGN", "GTIGF", "GTSTT", "GTINF", "GTPNA", "GTRTL", "GTVER"))


def _meaning(frame: Frame, report: Report) -> None:
    kind = frame.type
    if kind in _PLAIN:
        return
    report_type = report.common.get("report_type")
    if kind in ("GTIGL", "GTVGL") and report_type in (0, 1):
        report.ignition = report_type == 0  # GV/GL manuals: 0 = on, 1 = off (§3.13)
    elif kind == "GTSOS":
        report.alarm = ("sos", "SOS button pressed")
    elif kind == "GTPFA":
        report.alarm = ("power_off", "device powered off")
    elif kind in ("GTMPF", "GTEPF"):
        report.alarm = ("power_cut", "main power disconnected")
    elif kind == "GTBPL":
        report.alarm = ("low_battery", "backup battery low")
    elif kind == "GTTOW":
        report.alarm = ("tow", "vehicle towed")
    elif kind == "GTJDR":
        report.alarm = ("jamming", "GSM jamming detected")
    elif kind == "GTCRA":
        report.alarm = ("crash", "crash detected")
    elif kind == "GTSPD" and report_type != 1:
        report.alarm = ("overspeed", "speed outside the configured range")
    elif kind == "GTGEO":
        zone = report.common.get("report_id")
        where = "entered" if report_type == 1 else "left"
        report.alarm = ("geofence_enter" if report_type == 1 else "geofence_exit", f"geofence {zone} {where}")
    elif kind == "GTHBM" and report_type in _HARSH:
        report.alarm = (_HARSH[report_type], _HARSH[report_type].replace("_", " "))


_COMMON: dict[tuple[str, str], dict[str, Any]] = {}


def decode_report(frame: Frame) -> Report:
    """The report carried by a ``+RESP`` / ``+BUFF`` frame; FrameError when its layout does not fit."""
    version, name = frame.version, frame.fields[3]
    base = _COMMON.get((version, name))
    if base is None:
        code = device_type(version)
        base = {"protocol_version": version, "device_type": code}
        _put(base, "model", model_name(code))
        _put(base, "device_name", name)
        if len(_COMMON) >= 4096:
            _COMMON.clear()
        _COMMON[(version, name)] = base
    report = _fresh(frame, base)
    layout = LAYOUTS.get(frame.type)
    if frame.flags and "bad_count" in frame.flags:
        layout = None  # the trailer is not where a layout expects it: only the blocks' shape is sure
    if layout is None:
        report.flags.extend(frame.flags)
        k = by_shape(frame.fields, 4, report)
        if report.blocks or report.invalid:
            report.flags.append(SHAPE)
            if not frame.flags:
                _trailing_one(frame.fields, k, report)
        else:
            report.known = frame.type in LAYOUTS
        _meaning(frame, report)
        return report
    try:
        layout(frame, report)
    except (IndexError, ValueError) as e:
        # The model's layout differs from the one known for this type: find the blocks by shape.
        error = (FrameError("truncated", "fewer fields than the layout needs") if isinstance(e, IndexError)
                 else e if isinstance(e, FrameError) else FrameError("bad_value", str(e)[:40]))
        report = _fresh(frame, base)
        by_shape(frame.fields, 4, report)
        if not report.blocks and not report.invalid:
            raise error from None
        report.flags.append(SHAPE)
    else:
        if not _located_any(report):
            # The layout read no coordinates: a model that puts its block elsewhere still gives it.
            shaped = _fresh(frame, base)
            by_shape(frame.fields, 4, shaped)
            if _located_any(shaped):
                shaped.ignition = report.ignition  # from the message type (GTIGN...), not the fields
                report = shaped
                report.flags.append(SHAPE)
    report.flags.extend(frame.flags)
    _meaning(frame, report)
    return report


def _located_any(report: Report) -> bool:
    """Some block has coordinates and a fix time (a real fix or a last known position)."""
    for block in report.blocks:
        if block[5] is not None and block[7] is not None:
            return True
    return False


def _fresh(frame: Frame, base: dict[str, Any]) -> Report:
    common = dict(base)
    common["send_time"] = frame.send_time or None
    common["count"] = frame.count or None
    return Report(common)
