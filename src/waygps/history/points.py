"""One stored report as the history code sees it: a ``TrackPoint`` built from a ``DadosVeiculo`` document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from attrs import frozen

from waygps.documents import read_count, read_flag, read_number, read_time

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


def _odometer(attributes: Any) -> float | None:
    if not isinstance(attributes, Mapping):
        return None
    metres = read_number(attributes.get("odometer"))  # Teltonika IO 16: metres
    if metres is not None:
        return metres
    kilometres = read_number(attributes.get("mileage_km"))  # Queclink: kilometres
    return None if kilometres is None else kilometres * 1000.0


def point_from_doc(doc: Mapping[str, Any]) -> TrackPoint:
    """A ``TrackPoint`` from a stored document; odd field types read as absent, never raise."""
    event = doc.get("event")
    return TrackPoint(
        time=read_time(doc["dataDevice"]),
        received=read_time(doc.get("dataServidor")),
        latitude=read_number(doc.get("latitude")),
        longitude=read_number(doc.get("longitude")),
        valid=bool(doc.get("valid")),
        altitude=read_number(doc.get("altitude")),
        speed=read_number(doc.get("speed")),
        course=read_number(doc.get("course")),
        satellites=read_count(doc.get("satellites")),
        hdop=read_number(doc.get("hdop")),
        ignition=read_flag(doc.get("ignicao")),
        event=event if isinstance(event, str) else None,
        odometer_m=_odometer(doc.get("attributes")),
    )
