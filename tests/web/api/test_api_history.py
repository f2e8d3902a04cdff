"""The HTTP API on the real server and the embedded store: tracks in four formats, trips, stops, scopes, errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import attrs
import gpxpy
import pytest
import pytest_twisted
from api_support import ALL, IMEI, ONE, OTHER, content_type, error_of, get, insert_track, tokens
from history_tracks import two_trips

from waygps.history.trips import Stop, Trip, TripRules, detect, iso

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Using readBody:DeprecationWarning")]

DAY = "2026-11-28"


def track():
    """The two-trip day, with some invalid reports (one without coordinates) mixed in."""
    points = two_trips(ignition=True, odometer=True)
    out = []
    for i, p in enumerate(points):
        out.append(p)
        if i % 25 == 3:
            out.append(attrs.evolve(p, time=p.time + timedelta(seconds=1), valid=False, speed=0.0))
        if i % 50 == 7:
            out.append(attrs.evolve(p, time=p.time + timedelta(seconds=2), valid=False, latitude=None,
                                    longitude=None))
    return out


@pytest_twisted.inlineCallbacks
def test_a_days_track_in_every_format(start_server):
    server = yield start_server(websocket=tokens())
    points = track()
    insert_track(server, IMEI, points)
    # Another day's reports are outside the range.
    insert_track(server, IMEI, [attrs.evolve(p, time=p.time + timedelta(days=1)) for p in points[:5]])
    located = [p for p in points if p.latitude is not None]

    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}&to={DAY}&format=gpx")
    assert response.code == 200 and content_type(response) == "application/gpx+xml"
    assert b"attachment" in response.headers.getRawHeaders(b"content-disposition")[0]
    gpx = gpxpy.parse(body.decode())
    got = gpx.tracks[0].segments[0].points
    assert [(g.time, g.latitude, g.longitude) for g in got] == [(p.time, p.latitude, p.longitude) for p in located]
    assert got[0].elevation == 500.0 and got[0].satellites == 9

    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}&to={DAY}&format=csv")
    assert content_type(response).startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["time"] for r in rows] == [iso(p.time) for p in points]
    assert [r["valid"] for r in rows] == [str(p.valid).lower() for p in points]
    assert [float(r["latitude"]) for r in rows if r["latitude"]] == [p.latitude for p in located]

    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}&to={DAY}&format=geojson")
    assert content_type(response) == "application/geo+json"
    geo = json.loads(body)
    assert geo["type"] == "FeatureCollection"
    assert [f["geometry"]["coordinates"] for f in geo["features"]] == [[p.longitude, p.latitude] for p in located]
    assert [f["properties"]["time"] for f in geo["features"]] == [iso(p.time) for p in located]

    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}T00:00:00Z&to={DAY}T23:59:59Z")
    data = json.loads(body)
    assert data["count"] == len(points) == len(data["positions"])
    assert [p["time"] for p in data["positions"]] == [iso(p.time) for p in points]

    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}&to={DAY}&valid=true&limit=10")
    data = json.loads(body)
    assert data["count"] == 10 and all(p["valid"] for p in data["positions"])
    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}&to={DAY}&valid=false")
    assert json.loads(body)["count"] == len([p for p in points if not p.valid])


@pytest_twisted.inlineCallbacks
def test_trips_and_stops(start_server):
    server = yield start_server(websocket=tokens())
    points = track()
    insert_track(server, IMEI, points)
    expected = detect(points, TripRules())
    trips = [r for r in expected if isinstance(r, Trip)]
    stops = [r for r in expected if isinstance(r, Stop)]
    assert len(trips) == 2 and len(stops) == 3

    response, body = yield get(server, f"/devices/{IMEI}/trips?from={DAY}&to={DAY}")
    assert response.code == 200
    data = json.loads(body)
    assert data["count"] == 2 and data["rules"]["min_stop_seconds"] == 300
    for got, want in zip(data["trips"], trips):
        assert got["start"]["time"] == iso(want.start.time) and got["end"]["time"] == iso(want.end.time)
        assert got["distance_m"] == pytest.approx(want.distance_m, abs=0.1)
        assert got["odometer_distance_m"] == pytest.approx(want.odometer_distance_m, abs=0.1)
        assert got["max_speed_kmh"] == want.max_speed_kmh
        assert got["duration_s"] == want.duration_s
    assert data["trips"][0]["distance_m"] == pytest.approx(5900, abs=1)

    response, body = yield get(server, f"/devices/{IMEI}/stops?from={DAY}&to={DAY}")
    data = json.loads(body)
    assert [(s["start"], s["end"]) for s in data["stops"]] == [(iso(s.start), iso(s.end)) for s in stops]


@pytest_twisted.inlineCallbacks
def test_a_scoped_token_cannot_read_another_device(start_server):
    server = yield start_server(websocket=tokens())
    points = two_trips()
    insert_track(server, IMEI, points)
    insert_track(server, OTHER, points)

    response, body = yield get(server, "/devices", token=ONE)
    assert [d["mobile_id"] for d in json.loads(body)["devices"]] == [IMEI]
    response, body = yield get(server, "/devices", token=ALL)
    assert sorted(d["mobile_id"] for d in json.loads(body)["devices"]) == sorted([IMEI, OTHER])

    for path in ("", "/positions", "/positions?format=gpx", "/trips", "/stops"):
        response, body = yield get(server, f"/devices/{OTHER}{path}{'&' if '?' in path else '?'}from={DAY}",
                                   token=ONE)
        assert response.code == 404, path
        err = error_of(response, body)
        assert err["error"] == "not_found" and OTHER not in json.dumps({k: v for k, v in err.items()
                                                                        if k != "message"})
        # Exactly the answer of a device that does not exist.
        response2, body2 = yield get(server, f"/devices/999999999999999{path}{'&' if '?' in path else '?'}"
                                             f"from={DAY}", token=ONE)
        assert response2.code == 404
        assert error_of(response2, body2)["message"].replace("999999999999999", OTHER) == err["message"]
    response, body = yield get(server, f"/devices/{IMEI}/positions?from={DAY}", token=ONE)
    assert response.code == 200 and json.loads(body)["count"] > 0
    response, body = yield get(server, "/stats/daily", token=ONE)
    assert response.code == 403 and error_of(response, body)["error"] == "forbidden"


@pytest_twisted.inlineCallbacks
def test_errors_are_json_and_name_the_parameter(start_server):
    server = yield start_server(websocket=tokens())
    insert_track(server, IMEI, two_trips()[:10])
    base = f"/devices/{IMEI}/positions"
    cases = [
        (base + "?from=yesterday", 400, "from"),
        (base + "?to=2026-13-45", 400, "to"),
        (base + "?format=kml", 400, "format"),
        (base + "?valid=maybe", 400, "valid"),
        (base + "?limit=-3", 400, "limit"),
        (base + "?limit=ten", 400, "limit"),
        (base + f"?from={DAY}T10:00:00Z&to={DAY}T09:00:00Z", 400, "from"),
        (f"/devices/{IMEI}/trips?from=nope", 400, "from"),
        ("/stats/daily?from=11/28/2026", 400, "from"),
    ]
    for path, status, parameter in cases:
        response, body = yield get(server, path)
        err = error_of(response, body)
        assert (response.code, err.get("parameter")) == (status, parameter), (path, err)
        assert err["status"] == status and err["message"].startswith(parameter + ":")

    response, body = yield get(server, base, token=None)
    assert response.code == 401 and error_of(response, body)["error"] == "unauthorized"
    assert response.headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="waygps"']
    response, body = yield get(server, base, token="wrong")
    assert response.code == 401
    response, body = yield get(server, "/nothing/here")
    assert response.code == 404 and error_of(response, body)["error"] == "not_found"
    response, body = yield get(server, base, method=b"POST")
    assert response.code == 405 and error_of(response, body)["error"] == "method_not_allowed"


@pytest_twisted.inlineCallbacks
def test_openapi_description(start_server):
    server = yield start_server(websocket=tokens())
    response, body = yield get(server, "/openapi.json", token=None)
    assert response.code == 200
    spec = json.loads(body)
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= {"/devices", "/devices/{imei}/positions", "/devices/{imei}/trips",
                                  "/devices/{imei}/stops", "/stats/daily"}
    names = {p["name"] for p in spec["paths"]["/devices/{imei}/positions"]["get"]["parameters"]}
    assert names == {"imei", "from", "to", "format", "valid", "limit"}


@pytest_twisted.inlineCallbacks
def test_default_range_is_the_last_24_hours(start_server):
    server = yield start_server(websocket=tokens())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    points = [attrs.evolve(p, time=now - timedelta(hours=h)) for h, p in zip((30, 20, 1), two_trips()[:3])]
    insert_track(server, IMEI, points)
    response, body = yield get(server, f"/devices/{IMEI}/positions")
    assert [p["time"] for p in json.loads(body)["positions"]] == [iso(points[1].time), iso(points[2].time)]
