"""Generated tracks whose trips and stops are known, as ``TrackPoint`` lists or ``DadosVeiculo`` documents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import cos, radians
from typing import Any, Iterator

from attrs import frozen

from waygps.history.points import TrackPoint

M_PER_DEG_LAT = 111_195.0
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)
ORIGIN = (-33.45, -70.65)


@frozen
class Leg:
    seconds: int
    step: int  # seconds between reports
    speed_kmh: float = 0.0  # 0: parked
    heading: str = "N"  # N or E
    ignition: bool | None = None  # None: the device does not report ignition
    report_speed: float | None = None  # what the device says (default: speed_kmh)


def generate(legs: list[Leg], t0: datetime = T0, odometer: bool = False) -> list[TrackPoint]:
    lat, lon = ORIGIN
    t = t0
    odo = 1_000_000.0
    points = []
    for leg in legs:
        for _ in range(leg.seconds // leg.step):
            t = t + timedelta(seconds=leg.step)
            metres = leg.speed_kmh / 3.6 * leg.step
            if leg.heading == "N":
                lat += metres / M_PER_DEG_LAT
            else:
                lon += metres / (M_PER_DEG_LAT * cos(radians(lat)))
            odo += metres
            speed = leg.speed_kmh if leg.report_speed is None else leg.report_speed
            points.append(TrackPoint(time=t, latitude=lat, longitude=lon, valid=True, speed=speed,
                                     ignition=leg.ignition, odometer_m=odo if odometer else None,
                                     received=t + timedelta(seconds=2), altitude=500.0, satellites=9, hdop=0.8,
                                     course=0.0 if leg.heading == "N" else 90.0, event="tracking"))
    return points


def document(imei: str, point: TrackPoint, n: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"{imei}-{int(point.time.timestamp() * 1000)}-{n}", "IMEI": imei, "latitude": point.latitude, "longitude": point.longitude,
        "altitude": point.altitude, "speed": point.speed, "course": point.course, "satellites": point.satellites,
        "hdop": point.hdop, "ignicao": point.ignition, "valid": point.valid, "dataDevice": point.time,
        "dataServidor": point.received, "protocol": "generic", "event": point.event, "attributes": {}, "raw": "",
    }
    if point.odometer_m is not None:
        doc["attributes"]["odometer"] = point.odometer_m
    return doc


def documents(imei: str, points: list[TrackPoint]) -> Iterator[dict[str, Any]]:
    for n, point in enumerate(points):
        yield document(imei, point, n)


# A day with two trips and three stops (speed-only device):
#   parked 10 min, drive north 10 min at 36 km/h (6 km), parked 20 min (with a 2-min halt inside
#   the drive before it), drive east 5 min at 72 km/h (6 km), parked 10 min.
def two_trips(ignition: bool = False, odometer: bool = False) -> list[TrackPoint]:
    on = True if ignition else None
    off = False if ignition else None
    return generate([
        Leg(600, 30, 0.0, ignition=off),
        Leg(300, 10, 36.0, "N", ignition=on),
        Leg(120, 10, 0.0, "N", ignition=on),  # a traffic light: engine on, not moving
        Leg(300, 10, 36.0, "N", ignition=on),
        Leg(1200, 30, 0.0, ignition=off),
        Leg(300, 10, 72.0, "E", ignition=on),
        Leg(600, 30, 0.0, ignition=off),
    ], odometer=odometer)
