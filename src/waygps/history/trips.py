"""Trips and stops found in a track, point by point (a stream: memory does not grow with the track).

The rules (thresholds from ``[history]``):

* Only valid fixes with coordinates count; the rest are skipped.
* A point *moves* when its ignition is on, if the device reports ignition
  (and ``use_ignition``); otherwise when its speed is at least
  ``moving_speed_kmh``.
* A trip starts at the first moving point. It ends
  - at the first point reporting ignition off (ignition devices), or
  - at the first point of a standstill that lasts ``min_stop_seconds``
    (speed devices; a shorter halt, a traffic light, stays inside the trip), or
  - at the last point before a gap of more than ``max_gap_seconds``
    without reports, or at the end of the range.
* A trip shorter than ``min_trip_distance_m`` is GPS jitter: dropped, and
  the stop around it goes on.
* A stop is the time between two trips (or the range's edge and a trip)
  when it lasts at least ``min_stop_seconds``; its place is where the trip
  before it ended (or the first point of the range).

Distance is the sum of great-circle distances between consecutive points;
where the device reports an odometer, the odometer's difference is given too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from attrs import frozen

from waygps.history.geo import haversine_m
from waygps.history.points import TrackPoint


@frozen
class TripRules:
    moving_speed_kmh: float = 5.0
    min_stop_seconds: float = 300.0
    max_gap_seconds: float = 1800.0
    min_trip_distance_m: float = 200.0
    use_ignition: bool = True

    @classmethod
    def from_config(cls, config: Any) -> "TripRules":
        return cls(moving_speed_kmh=config.moving_speed_kmh, min_stop_seconds=config.min_stop_seconds,
                   max_gap_seconds=config.max_gap_seconds, min_trip_distance_m=config.min_trip_distance_m,
                   use_ignition=config.use_ignition)


@frozen
class Place:
    time: datetime
    latitude: float
    longitude: float


@frozen
class Trip:
    start: Place
    end: Place
    distance_m: float
    odometer_distance_m: float | None
    max_speed_kmh: float
    average_speed_kmh: float  # distance over duration
    points: int

    @property
    def duration_s(self) -> float:
        return (self.end.time - self.start.time).total_seconds()


@frozen
class Stop:
    start: datetime
    end: datetime
    latitude: float
    longitude: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _place(point: TrackPoint) -> Place:
    assert point.latitude is not None and point.longitude is not None
    return Place(point.time, point.latitude, point.longitude)


class _Leg:
    """Running totals of an open trip."""

    __slots__ = ("first", "last", "distance", "max_speed", "points", "odo_first", "odo_last")

    def __init__(self, first: TrackPoint) -> None:
        self.first = first
        self.last = first
        self.distance = 0.0
        self.max_speed = first.speed or 0.0
        self.points = 1
        self.odo_first = first.odometer_m
        self.odo_last = first.odometer_m

    def add(self, point: TrackPoint) -> None:
        assert self.last.latitude is not None and self.last.longitude is not None
        assert point.latitude is not None and point.longitude is not None
        self.distance += haversine_m(self.last.latitude, self.last.longitude, point.latitude, point.longitude)
        self.max_speed = max(self.max_speed, point.speed or 0.0)
        self.points += 1
        if point.odometer_m is not None:
            if self.odo_first is None:
                self.odo_first = point.odometer_m
            self.odo_last = point.odometer_m
        self.last = point

    def copy(self) -> "_Leg":
        other = _Leg.__new__(_Leg)
        for name in _Leg.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def trip(self) -> Trip:
        duration = (self.last.time - self.first.time).total_seconds()
        odo = None
        if self.odo_first is not None and self.odo_last is not None and self.odo_last >= self.odo_first:
            odo = self.odo_last - self.odo_first
        return Trip(start=_place(self.first), end=_place(self.last), distance_m=self.distance,
                    odometer_distance_m=odo, max_speed_kmh=self.max_speed,
                    average_speed_kmh=(self.distance / duration * 3.6) if duration > 0 else 0.0,
                    points=self.points)


class TripDetector:
    """Feed points oldest first with :meth:`add`; call :meth:`finish` once. Found records are in ``found``
    (trips and stops in time order) and are taken with :meth:`take`."""

    def __init__(self, rules: TripRules) -> None:
        self.rules = rules
        self.found: list[Trip | Stop] = []
        self._last: TrackPoint | None = None
        self._leg: _Leg | None = None
        self._halt: _Leg | None = None  # the trip as it stood when the current standstill began
        self._stop_from: TrackPoint | None = None

    def take(self) -> list[Trip | Stop]:
        found, self.found = self.found, []
        return found

    def moving(self, point: TrackPoint) -> bool:
        if self.rules.use_ignition and point.ignition is not None:
            return point.ignition
        return (point.speed or 0.0) >= self.rules.moving_speed_kmh

    def add(self, point: TrackPoint) -> None:
        if not (point.valid and point.located):
            return
        last = self._last
        if last is not None and point.time < last.time:
            return  # out of order: the query sorts, so only a duplicate timestamp oddity lands here
        if last is not None and (point.time - last.time).total_seconds() > self.rules.max_gap_seconds:
            if self._leg is not None:
                self._close(self._halt or self._leg)
        self._last = point
        moving = self.moving(point)
        leg = self._leg
        if leg is None:
            if moving:
                self._leg = _Leg(point)
                self._halt = None
            elif self._stop_from is None:
                self._stop_from = point
            return
        leg.add(point)
        if moving:
            self._halt = None
            return
        if self.rules.use_ignition and point.ignition is False:
            self._close(leg)
            return
        if self._halt is None:
            self._halt = leg.copy()
        elif (point.time - self._halt.last.time).total_seconds() >= self.rules.min_stop_seconds:
            self._close(self._halt)

    def finish(self) -> None:
        if self._leg is not None:
            self._close(self._halt or self._leg)
        if self._stop_from is not None and self._last is not None:
            self._stop(self._stop_from, self._last)
        self._stop_from = None

    def _close(self, leg: _Leg) -> None:
        self._leg = None
        self._halt = None
        trip = leg.trip()
        if trip.distance_m < self.rules.min_trip_distance_m:
            if self._stop_from is None:
                self._stop_from = leg.first
            return
        if self._stop_from is not None:
            self._stop(self._stop_from, leg.first)
        self.found.append(trip)
        self._stop_from = leg.last

    def _stop(self, start: TrackPoint, end: TrackPoint) -> None:
        if (end.time - start.time).total_seconds() >= self.rules.min_stop_seconds:
            assert start.latitude is not None and start.longitude is not None
            self.found.append(Stop(start=start.time, end=end.time, latitude=start.latitude,
                                   longitude=start.longitude))


def detect(points: Iterable[TrackPoint], rules: TripRules) -> list[Trip | Stop]:
    """Trips and stops of a whole track, in time order."""
    detector = TripDetector(rules)
    for point in points:
        detector.add(point)
    detector.finish()
    return detector.take()


def trip_json(trip: Trip) -> dict[str, Any]:
    return {
        "start": _place_json(trip.start), "end": _place_json(trip.end),
        "duration_s": round(trip.duration_s, 3), "distance_m": round(trip.distance_m, 1),
        "odometer_distance_m": None if trip.odometer_distance_m is None else round(trip.odometer_distance_m, 1),
        "max_speed_kmh": round(trip.max_speed_kmh, 2), "average_speed_kmh": round(trip.average_speed_kmh, 2),
        "points": trip.points,
    }


def stop_json(stop: Stop) -> dict[str, Any]:
    return {"start": iso(stop.start), "end": iso(stop.end), "duration_s": round(stop.duration_s, 3),
            "latitude": stop.latitude, "longitude": stop.longitude}


def _place_json(place: Place) -> dict[str, Any]:
    return {"time": iso(place.time), "latitude": place.latitude, "longitude": place.longitude}


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
