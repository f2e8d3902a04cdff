"""Where a simulated vehicle is: a plausible drive, advanced by the caller's clock.

A :class:`Track` alternates *trips* (ignition on: accelerating, cruising with
smooth heading and speed changes, short stops at junctions) and *parking*
(ignition off, standing still). Heading and speed move toward targets at a
bounded rate, so consecutive fixes never jump. With a :class:`Route` (the
points of a GPX file) the vehicle follows the route's roads back and forth
instead of wandering.

Pure: no Twisted, no clock; every method takes ``now`` (seconds since the
epoch) and a seeded :class:`random.Random` makes a device's drive repeatable.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from attrs import frozen

EARTH_RADIUS_M = 6_371_000.0

#: Trip and parking lengths (seconds), short enough to see ignition cycles within minutes.
TRIP_SECONDS = (240.0, 900.0)
PARK_SECONDS = (60.0, 240.0)
STOP_EVERY_SECONDS = (60.0, 240.0)
STOP_SECONDS = (5.0, 40.0)
MAX_ACCELERATION_KMH_S = 8.0
MAX_TURN_DEG_S = 15.0


@frozen
class Fix:
    """One reading of the vehicle: what a device puts into a report."""

    time: float  # seconds since the epoch, UTC
    latitude: float
    longitude: float
    speed: float  # km/h
    heading: float  # degrees, 0 = north, clockwise
    altitude: float  # metres
    ignition: bool
    odometer_km: float
    #: ``"ignition_on"`` / ``"ignition_off"`` when the ignition changed at this fix, else ``None``.
    event: str | None = None

    @property
    def moving(self) -> bool:
        return self.speed > 1.0


def destination(lat: float, lon: float, heading: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` away from (lat, lon) along ``heading`` (great circle)."""
    angular = metres / EARTH_RADIUS_M
    bearing = math.radians(heading)
    phi1, lambda1 = math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi1) * math.cos(angular) + math.cos(phi1) * math.sin(angular) * math.cos(bearing))
    lambda2 = lambda1 + math.atan2(math.sin(bearing) * math.sin(angular) * math.cos(phi1),
                                   math.cos(angular) - math.sin(phi1) * math.sin(phi2))
    return math.degrees(phi2), (math.degrees(lambda2) + 540.0) % 360.0 - 180.0


def distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial heading (degrees, 0-360) from the first point toward the second."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def _turn_toward(current: float, target: float, limit: float) -> float:
    delta = (target - current + 540.0) % 360.0 - 180.0
    return (current + max(-limit, min(limit, delta))) % 360.0


class Route:
    """A polyline (latitude, longitude, altitude) the vehicle drives along, back and forth."""

    def __init__(self, points: Sequence[tuple[float, float, float]]) -> None:
        if len(points) < 2:
            raise ValueError("a route needs at least two points")
        self.points = list(points)
        self.cumulative = [0.0]
        for (a, b, _), (c, d, _) in zip(self.points, self.points[1:]):
            self.cumulative.append(self.cumulative[-1] + distance(a, b, c, d))
        self.length = self.cumulative[-1]
        if self.length <= 0:
            raise ValueError("a route's points are all in one place")

    def at(self, offset: float) -> tuple[float, float, float, float]:
        """(lat, lon, altitude, heading) ``offset`` metres along the route, 0 <= offset <= length."""
        offset = max(0.0, min(self.length, offset))
        low, high = 0, len(self.cumulative) - 1
        while high - low > 1:
            mid = (low + high) // 2
            if self.cumulative[mid] <= offset:
                low = mid
            else:
                high = mid
        (lat1, lon1, alt1), (lat2, lon2, alt2) = self.points[low], self.points[high]
        span = self.cumulative[high] - self.cumulative[low]
        share = (offset - self.cumulative[low]) / span if span else 0.0
        lat = lat1 + (lat2 - lat1) * share
        lon = lon1 + (lon2 - lon1) * share
        return lat, lon, alt1 + (alt2 - alt1) * share, bearing(lat1, lon1, lat2, lon2)


def load_gpx(path: str) -> Route:
    """The track points (or else route points, or waypoints) of a GPX file, in file order."""
    try:
        import gpxpy
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ValueError("reading GPX files needs gpxpy: pip install 'waygps[simulate]'") from e
    with open(path, encoding="utf-8") as f:
        try:
            gpx = gpxpy.parse(f)
        except Exception as e:  # gpxpy raises its own GPXException and XML errors alike
            raise ValueError(f"{path}: not a GPX file ({e})") from e
    points = [(p.latitude, p.longitude, p.elevation or 0.0)
              for t in gpx.tracks for s in t.segments for p in s.points]
    if len(points) < 2:
        points = [(p.latitude, p.longitude, p.elevation or 0.0) for r in gpx.routes for p in r.points]
    if len(points) < 2:
        points = [(p.latitude, p.longitude, p.elevation or 0.0) for p in gpx.waypoints]
    return Route(points)


class Track:
    """The drive of one vehicle; :meth:`advance` moves it to ``now`` and returns the fix there."""

    def __init__(self, rng: random.Random, now: float, latitude: float, longitude: float,
                 route: Route | None = None, cruise_kmh: tuple[float, float] = (25.0, 90.0)) -> None:
        self.rng = rng
        self.route = route
        self.cruise_kmh = cruise_kmh
        self.time = now
        self.latitude = latitude
        self.longitude = longitude
        self.altitude = 300.0 + rng.uniform(-50, 50)
        self.heading = rng.uniform(0, 360)
        self.target_heading = self.heading
        self.speed = 0.0
        self.target_speed = 0.0
        self.odometer_km = rng.uniform(1000, 90000)
        self.ignition = rng.random() < 0.7
        self.phase_ends = now + rng.uniform(*(TRIP_SECONDS if self.ignition else PARK_SECONDS))
        self.next_stop = now + rng.uniform(*STOP_EVERY_SECONDS)
        self.stopped_until = 0.0
        self.route_offset = rng.uniform(0, route.length) if route else 0.0
        self.route_direction = 1.0
        if route is not None:
            self.latitude, self.longitude, self.altitude, self.heading = route.at(self.route_offset)
        self._event: str | None = None

    def advance(self, now: float) -> Fix:
        """Move the vehicle to ``now`` (in steps of at most a second) and return the fix there."""
        while self.time < now:
            self._step(min(1.0, now - self.time))
        event, self._event = self._event, None
        return Fix(time=now, latitude=round(self.latitude, 6), longitude=round(self.longitude, 6),
                   speed=round(self.speed, 1), heading=round(self.heading) % 360, altitude=round(self.altitude, 1),
                   ignition=self.ignition, odometer_km=round(self.odometer_km, 1), event=event)

    # --- one step -----------------------------------------------------------------------------
    def _step(self, dt: float) -> None:
        self.time += dt
        rng = self.rng
        if self.time >= self.phase_ends:
            self._toggle_ignition()
        if not self.ignition:
            self.target_speed = 0.0
        elif self.time < self.stopped_until:
            self.target_speed = 0.0
        elif self.time >= self.next_stop:
            self.stopped_until = self.time + rng.uniform(*STOP_SECONDS)
            self.next_stop = self.stopped_until + rng.uniform(*STOP_EVERY_SECONDS)
        elif self.target_speed == 0.0 or rng.random() < 0.05 * dt:
            self.target_speed = rng.uniform(*self.cruise_kmh)
        change = MAX_ACCELERATION_KMH_S * dt
        self.speed = max(0.0, self.speed + max(-change, min(change, self.target_speed - self.speed)))
        metres = self.speed / 3.6 * dt
        if self.route is not None:
            self._along_route(metres)
        else:
            self._wander(metres, dt)
        self.odometer_km += metres / 1000.0

    def _toggle_ignition(self) -> None:
        if self.ignition and self.speed > 0.5:
            self.target_speed = 0.0  # brake first; the ignition goes off once standing
            self.phase_ends = self.time + 1.0
            return
        self.ignition = not self.ignition
        self._event = "ignition_on" if self.ignition else "ignition_off"
        self.phase_ends = self.time + self.rng.uniform(*(TRIP_SECONDS if self.ignition else PARK_SECONDS))
        if self.ignition:
            self.next_stop = self.time + self.rng.uniform(*STOP_EVERY_SECONDS)

    def _wander(self, metres: float, dt: float) -> None:
        if metres <= 0:
            return
        if self.rng.random() < 0.02 * dt:
            self.target_heading = (self.heading + self.rng.choice((-90.0, 90.0, self.rng.uniform(-30, 30)))) % 360
        self.heading = _turn_toward(self.heading, self.target_heading, MAX_TURN_DEG_S * dt)
        self.latitude, self.longitude = destination(self.latitude, self.longitude, self.heading, metres)
        self.altitude += self.rng.uniform(-0.3, 0.3)

    def _along_route(self, metres: float) -> None:
        route = self.route
        assert route is not None
        if metres <= 0:
            return
        offset = self.route_offset + self.route_direction * metres
        if offset >= route.length or offset <= 0:
            self.route_direction = -self.route_direction
            offset = max(0.0, min(route.length, offset))
        self.route_offset = offset
        self.latitude, self.longitude, self.altitude, heading = route.at(offset)
        self.heading = heading if self.route_direction > 0 else (heading + 180.0) % 360.0
