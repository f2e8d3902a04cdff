"""A shortcut for the frame a GV50 server mostly receives: the one-position GV-family GTFRI.

``fast_gtfri`` decodes exactly what ``parse.parse_frame`` + ``reports.decode_report``
+ the codec would for that shape, in one function (the general path costs
about twice as much in calls and intermediate objects). Anything it is not
sure of - another layout, a bad value, an unknown version - makes it return
``None`` and the general path decides, with its log lines and reasons.
``tests/drivers/gv50/test_gv50_properties.py`` checks both paths give equal actions.
No Twisted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waygps.actions import Store
from waygps.drivers.gv50.parse import HEX_DIGITS
from waygps.drivers.gv50.reports import _COMMON, _STATUS, MAX_ACCURACY, MAX_DIGITS, REPORT_BYTES, cell_info
from waygps.events import Position

_KINDS = {"+RESP:GTFRI": False, "+BUFF:GTFRI": True}
# (version, name, status, report byte, MCC, MNC, LAC, cell ID) -> (the attributes they give, ignition)
_BASES: dict[tuple[str, ...], tuple[dict[str, Any], bool | None]] = {}
# Fix time text -> datetime (immutable, so shareable): many devices report within the same second.
_FIXES: dict[str, datetime] = {}
_SACKS: dict[str, bytes] = {}  # count -> its "+SACK:<count>$"; a count found here was found well formed
_from_iso = datetime.fromisoformat


def fast_gtfri(fields: list[str], text: str, imei: str, now: datetime, ack: bool, protocol: str) -> Store | None:
    """The ``Store`` action of a one-position GTFRI from the identified ``imei``, or None."""
    buffered = _KINDS.get(fields[0])
    if buffered is None or not 30 <= len(fields) <= 31:
        return None
    (_, version, unique_id, name, power, kind, number, accuracy, speed, course, altitude, lon, lat, when,
     mcc, mnc, lac, cell, reserved, mileage, hours, analog) = fields[:22]
    battery, status, send, count = fields[-7], fields[-6], fields[-2], fields[-1]
    key = (version, name, status, kind, mcc, mnc, lac, cell)
    known = _BASES.get(key)
    if known is None:
        # Attributes that repeat from frame to frame (version, name, status, report byte, serving
        # cell), built once from the general path's caches: a version found there was found well
        # formed. One dict for all of them: one look-up and one copy per frame.
        common, state, report = _COMMON.get((version, name)), _STATUS.get(status), REPORT_BYTES.get(kind)
        if common is None or state is None or report is None:
            return None
        try:
            cell_attributes = cell_info(mcc, mnc, lac, cell)
        except ValueError:
            return None  # a malformed cell: the general path rejects the block
        known = ({**common, "report_id": report[0], "report_type": report[1], **state[0], **cell_attributes},
                 state[1])
        if len(_BASES) >= 4096:
            _BASES.clear()
        _BASES[key] = known
    # The checks parse.parse_frame and reports._fri make, in the same terms (the text comes from an
    # ASCII decode, so isdigit() sees ASCII digits only). A conversion below that fails (a
    # non-number, a bad time) sends the frame to the general path, which rejects it or its block.
    sack = _SACKS.get(count)  # found: a count seen well formed before (4 hex digits)
    if (unique_id != imei or number != "1"
            or (sack is None and (len(count) != 4 or count.strip(HEX_DIGITS)))
            or (send and (len(send) != 14 or not send.isdigit()))
            or not lon or not lat or len(when) != 14 or (reserved and reserved != "00")
            or (power and (len(power) > MAX_DIGITS or not power.isdigit()))
            or (analog and (len(analog) > MAX_DIGITS or not analog.isdigit()))):
        return None
    try:
        longitude = float(lon)
        latitude = float(lat)
        speed_v = float(speed) if speed else None
        course_v = float(course) if course else None
        altitude_v = float(altitude) if altitude else None
        mileage_v = float(mileage) if mileage else None
        acc = int(accuracy) if accuracy else None
        fix = _FIXES.get(when)
        if fix is None:
            # ISO 8601 basic format ("20160309T113548"): the same checks as the extended one, less to build.
            fix = _from_iso(f"{when[:8]}T{when[8:]}+00:00")
            if len(_FIXES) >= 4096:
                _FIXES.clear()
            _FIXES[when] = fix
    except ValueError:
        return None
    if not (-180.0 <= longitude <= 180.0 and -90.0 <= latitude <= 90.0) or (
            acc is not None and not 0 <= acc <= MAX_ACCURACY):
        return None
    if ("n" in text or "N" in text) and (  # float() reads "nan", "inf", "infinity": all have an n
            (speed_v is not None and speed_v - speed_v) or (course_v is not None and course_v - course_v)
            or (altitude_v is not None and altitude_v - altitude_v)
            or (mileage_v is not None and mileage_v - mileage_v)):
        return None
    attributes = known[0].copy()  # each Position its own dict: later stages add to copies of it
    attributes["send_time"] = send or None
    attributes["count"] = count
    if power:
        attributes["power"] = int(power) / 1000.0
    if mileage_v is not None:
        attributes["mileage_km"] = mileage_v
    if hours:
        attributes["hour_meter"] = hours
    if analog:
        attributes["analog_input_mv"] = int(analog)
    if battery and len(battery) <= 3 and battery.isdigit():
        value = int(battery)
        if value <= 100:
            attributes["battery"] = value
    if acc is not None:
        attributes["gps_accuracy"] = acc
    position = Position(
        imei=imei, protocol=protocol, device_time=fix, server_time=now, event="GTFRI",
        key=f"GTFRI,{send},{count},0,{when}", valid=acc != 0, latitude=latitude, longitude=longitude,
        altitude=altitude_v, speed=speed_v, course=course_v, hdop=float(acc) if acc else None,
        ignition=known[1], buffered=buffered, attributes=attributes, raw=text,
    )
    if sack is None:
        if len(_SACKS) >= 65536:
            _SACKS.clear()
        sack = _SACKS[count] = b"+SACK:" + count.encode() + b"$"
    return Store((position,), sack) if ack else Store((position,))
