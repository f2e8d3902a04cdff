"""Track encoders written piece by piece: ``head()``, ``points(batch)`` any number of times, ``tail()``.

Each returns bytes ready for the wire or a file, so an export of any length
holds one batch at a time. GPX goes through ``gpxpy`` (its element writer
for each point, its document writer for the envelope); CSV through the
``csv`` module; JSON and GeoJSON through ``json``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

from waygps.history.points import TrackPoint
from waygps.history.trips import iso

FORMATS = ("json", "geojson", "gpx", "csv")
CONTENT_TYPES = {
    "json": "application/json",
    "geojson": "application/geo+json",
    "gpx": "application/gpx+xml",
    "csv": "text/csv; charset=utf-8",
}
CSV_COLUMNS = ("time", "latitude", "longitude", "altitude", "speed", "course", "valid", "ignition",
               "satellites", "hdop", "event", "received")


def point_json(p: TrackPoint) -> dict[str, Any]:
    return {"time": iso(p.time), "latitude": p.latitude, "longitude": p.longitude, "altitude": p.altitude,
            "speed": p.speed, "course": p.course, "valid": p.valid, "ignition": p.ignition,
            "satellites": p.satellites, "hdop": p.hdop, "event": p.event, "received": iso(p.received)}


class Encoder:
    format = ""

    def __init__(self, imei: str) -> None:
        self.imei = imei
        self.count = 0

    def head(self) -> bytes:
        raise NotImplementedError

    def points(self, batch: Iterable[TrackPoint]) -> bytes:
        raise NotImplementedError

    def tail(self) -> bytes:
        raise NotImplementedError


class JsonEncoder(Encoder):
    """``{"imei": ..., "positions": [...], "count": N}``: the count comes last, after the points."""

    format = "json"

    def head(self) -> bytes:
        return b'{"imei":' + json.dumps(self.imei).encode() + b',"positions":['

    def points(self, batch: Iterable[TrackPoint]) -> bytes:
        parts = []
        for p in batch:
            parts.append(("," if self.count else "") + json.dumps(point_json(p), separators=(",", ":")))
            self.count += 1
        return "\n".join(parts).encode()

    def tail(self) -> bytes:
        return b'],"count":' + str(self.count).encode() + b"}\n"


class GeoJsonEncoder(Encoder):
    """A FeatureCollection of Point features (points without coordinates left out), properties per point."""

    format = "geojson"

    def head(self) -> bytes:
        return (b'{"type":"FeatureCollection","properties":{"imei":' + json.dumps(self.imei).encode()
                + b'},"features":[')

    def points(self, batch: Iterable[TrackPoint]) -> bytes:
        parts = []
        for p in batch:
            if not p.located:
                continue
            props = point_json(p)
            del props["latitude"], props["longitude"]
            feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [p.longitude, p.latitude]},
                       "properties": props}
            parts.append(("," if self.count else "") + json.dumps(feature, separators=(",", ":")))
            self.count += 1
        return "\n".join(parts).encode()

    def tail(self) -> bytes:
        return b"]}\n"


class CsvEncoder(Encoder):
    format = "csv"

    def head(self) -> bytes:
        return self._rows([CSV_COLUMNS])

    def points(self, batch: Iterable[TrackPoint]) -> bytes:
        rows = []
        for p in batch:
            rows.append((iso(p.time), _blank(p.latitude), _blank(p.longitude), _blank(p.altitude), _blank(p.speed),
                         _blank(p.course), str(p.valid).lower(), _blank(p.ignition), _blank(p.satellites),
                         _blank(p.hdop), _blank(p.event), _blank(iso(p.received))))
        self.count += len(rows)
        return self._rows(rows)

    def tail(self) -> bytes:
        return b""

    @staticmethod
    def _rows(rows: Iterable[Iterable[Any]]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        return out.getvalue().encode("utf-8")


def _blank(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return value


class GpxEncoder(Encoder):
    """GPX 1.1: one track, one segment; points without coordinates left out."""

    format = "gpx"
    _MARK = "<!--waygps-points-->"

    def __init__(self, imei: str) -> None:
        super().__init__(imei)
        import gpxpy.gpx

        self._gpx = gpxpy.gpx
        document = gpxpy.gpx.GPX()
        document.creator = "WayGPS"
        track = gpxpy.gpx.GPXTrack(name=imei)
        segment = gpxpy.gpx.GPXTrackSegment()
        track.segments.append(segment)
        document.tracks.append(track)
        # A placeholder point marks where the streamed points go in gpxpy's own envelope.
        segment.points.append(gpxpy.gpx.GPXTrackPoint(0.0, 0.0, name=self._MARK))
        xml = document.to_xml(version="1.1")
        from gpxpy import gpxfield

        self._field_xml = gpxfield.gpx_fields_to_xml
        placeholder = self._field_xml(segment.points[0], "trkpt", version="1.1", indent="      ")
        index = xml.find(placeholder.strip())
        if index < 0:  # pragma: no cover - gpxpy changed its layout
            raise RuntimeError("cannot place points in gpxpy's document")
        start = xml.rfind("\n", 0, index) + 1
        self._head = xml[:start].rstrip("\n")
        self._tail = xml[index + len(placeholder.strip()):]

    def head(self) -> bytes:
        return self._head.encode("utf-8")

    def points(self, batch: Iterable[TrackPoint]) -> bytes:
        make = self._gpx.GPXTrackPoint
        parts = []
        for p in batch:
            if not p.located:
                continue
            point = make(p.latitude, p.longitude, elevation=p.altitude, time=p.time)
            if p.satellites is not None:
                point.satellites = p.satellites
            if p.hdop is not None:
                point.horizontal_dilution = p.hdop
            if p.course is not None:
                point.course = p.course
            parts.append(self._field_xml(point, "trkpt", version="1.1", indent="      "))
            self.count += 1
        return "".join(parts).encode("utf-8")

    def tail(self) -> bytes:
        return self._tail.encode("utf-8")


ENCODERS: dict[str, type[Encoder]] = {"json": JsonEncoder, "geojson": GeoJsonEncoder, "gpx": GpxEncoder,
                                      "csv": CsvEncoder}


def encoder_for(fmt: str, imei: str) -> Encoder:
    return ENCODERS[fmt](imei)
