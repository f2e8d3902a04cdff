"""Data quality of a position report: flag what cannot be true, grade the rest.

A flagged report is still stored (it is evidence of what the device sent) but
with ``valid = False`` and ``attributes["qualityFlag"]`` naming the reason, so
it never moves the vehicle. A plausible report with a fix gets a grade in
``attributes["quality"]`` from its HDOP and satellite count: ``excelente``,
``buena``, ``regular`` or ``mala`` (the vocabulary of the dashboards); without
either figure it gets no grade. The two fields never share a value: the grade
says how good a fix is, the flag why a report is not one.

Nothing here imports Twisted: ``now`` is an argument.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from waygps.events import Position

_new = object.__new__

MAX_SPEED_KMH = 400.0
MAX_CLOCK_AHEAD = timedelta(minutes=10)
EARLIEST_FIX = datetime(2000, 1, 1, tzinfo=timezone.utc)

# Reasons (attributes.qualityFlag of a report stored with valid = False).
QUALITY = "quality"  # attribute of the grade
FLAG = "qualityFlag"  # attribute of the reason
NO_COORDINATES = "no_coordinates"
OUT_OF_RANGE = "coordinates_out_of_range"
ZERO_COORDINATES = "zero_coordinates"
FUTURE_TIME = "time_in_future"
ANCIENT_TIME = "time_before_2000"
IMPOSSIBLE_SPEED = "impossible_speed"
NO_FIX = "no_fix"

GRADES = ("excelente", "buena", "regular", "mala")
# Upper HDOP bound of each grade; above the last bound: mala.
_HDOP_BOUNDS = (1.0, 2.0, 5.0)
# Lower satellite-count bound of each grade; below the last bound: mala.
_SATELLITE_BOUNDS = (9, 6, 4)
_SATELLITES_UP = tuple(reversed(_SATELLITE_BOUNDS))


def _finite(value: float | None) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def problem(position: Position, now: datetime) -> str | None:
    """Why the report cannot describe where the vehicle really was (``None``: plausible)."""
    lat, lon = position.latitude, position.longitude
    if lat is None or lon is None:
        return NO_COORDINATES
    if type(lat) is float and type(lon) is float:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):  # (NaN compares false: out too)
            return OUT_OF_RANGE
    elif not (_finite(lat) and _finite(lon)) or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return OUT_OF_RANGE
    if lat == 0.0 and lon == 0.0:
        return ZERO_COORDINATES
    if position.device_time > now + MAX_CLOCK_AHEAD:
        return FUTURE_TIME
    if position.device_time < EARLIEST_FIX:
        return ANCIENT_TIME
    speed = position.speed
    if speed is not None and not (-math.inf < speed <= MAX_SPEED_KMH if type(speed) is float
                                  else _finite(speed) and speed <= MAX_SPEED_KMH):
        return IMPOSSIBLE_SPEED
    return None


def grade(hdop: float | None, satellites: int | None) -> str | None:
    """The worse of the HDOP grade and the satellite grade; ``None`` when neither is known."""
    index = -1
    if hdop is not None and _finite(hdop) and hdop > 0:
        index = bisect_left(_HDOP_BOUNDS, hdop)  # the first bound the HDOP does not exceed
    if satellites is not None and isinstance(satellites, int):
        # the first bound the count reaches (the bounds go down)
        index = max(index, len(_SATELLITES_UP) - bisect_right(_SATELLITES_UP, satellites))
    return GRADES[index] if index >= 0 else None


def assess(position: Position, now: datetime) -> tuple[Position, str | None]:
    """The report as it is stored, and the reason it was flagged (``None`` if it was not).

    A report the device itself marked as without fix stays invalid with
    quality ``no_fix`` unless something worse is wrong with it; that is not a
    flag raised by WayGPS, so the returned reason is ``None``.
    """
    reason = problem(position, now)
    if reason is not None and (position.valid or reason != NO_COORDINATES):
        flagged = reason if position.valid else None
        return restamped(position, False, {**position.attributes, FLAG: reason}), flagged
    if not position.valid:
        return restamped(position, False, {**position.attributes, FLAG: NO_FIX}), None
    graded = grade(position.hdop, position.satellites)
    if graded is None:
        return position, None
    return restamped(position, True, {**position.attributes, QUALITY: graded}), None


def restamped(p: Position, valid: bool, attributes: dict[str, Any]) -> Position:
    """``p`` with another ``valid`` and ``attributes`` (a dict nobody else holds).

    This runs for every report. ``Position`` keeps its fields in an instance ``__dict__``
    (``slots=False``), so a copy of that dict with two values replaced is the whole new report, in
    about a third of the time of ``Position(...)`` and a quarter of ``attrs.evolve``
    (``tests/persistence/test_persistence_quality.py`` checks it equals ``attrs.evolve``). A cached
    ``document_id`` comes along: it depends on neither value."""
    if type(p) is not Position:  # a subclass may keep fields elsewhere
        return attrs.evolve(p, valid=valid, attributes=attributes)
    copy = _new(Position)
    state = copy.__dict__
    state.update(p.__dict__)
    state["valid"] = valid
    state["attributes"] = attributes
    return copy
