"""One stored report as the history code sees it: a ``TrackPoint`` built from a ``DadosVeiculo`` document."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from attrs import frozen

# Only what exports and trips use is read from the store.
PROJECTION = {
    "_id": 0, "dataDevice": 1, "dataServidor": 1, "latitude": 1, "longitude": 1, "altitude": 1, "speed": 1,
    "course": 1, "satellites": 1, "hdop": 1, "ignicao": 1, "valid": 1, "event": 1,
    "attributes.odometer": 1, "attributes.mileage_km": 1,
}


@frozen(slots=True)
class TrackPoint:
    time: datetime
    latitude: float | None
    longitude: float | None
    valid: bool
    received: datetime | None = None
    altitude: float | None = None
    speed: float | None = None  # km/h
    course: float | None = None
    satellites: int | None = None
    hdop: float | None = None
    ignition: bool | None = None
    event: str | None = None
    odometer_m: float | None = None  # the device's own odometer, when it reports one

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _odometer(attributes: Any) -> float | None:
    if not isinstance(attributes, Mapping):
        return None
    value = attributes.get("odometer")  # Teltonika IO 16: metres
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    value = attributes.get("mileage_km")  # Queclink: kilometres
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 1000.0
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def point_from_doc(doc: Mapping[str, Any]) -> TrackPoint:
    """A ``TrackPoint`` from a stored document; odd field types read as absent, never raise."""
    satellites = doc.get("satellites")
    ignition = doc.get("ignicao")
    event = doc.get("event")
    return TrackPoint(
        time=_utc(doc["dataDevice"]),
        received=_utc(doc.get("dataServidor")),
        latitude=_number(doc.get("latitude")),
        longitude=_number(doc.get("longitude")),
        valid=bool(doc.get("valid")),
        altitude=_number(doc.get("altitude")),
        speed=_number(doc.get("speed")),
        course=_number(doc.get("course")),
        satellites=satellites if isinstance(satellites, int) and not isinstance(satellites, bool) else None,
        hdop=_number(doc.get("hdop")),
        ignition=ignition if isinstance(ignition, bool) else None,
        event=event if isinstance(event, str) else None,
        odometer_m=_odometer(doc.get("attributes")),
    )
