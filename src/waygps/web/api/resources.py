"""The ``/api/v1/`` resource: one leaf that routes by path, so every answer (404s too) is JSON.

Routes (GET only)::

    openapi.json                              the OpenAPI description (no token needed)
    devices                                   devices in the token's scope, with their state
    devices/{imei}                            one device's state
    devices/{imei}/positions                  the track, streamed (json, geojson, gpx, csv)
    devices/{imei}/trips, devices/{imei}/stops
    stats/daily                               daily reception statistics (tokens that see every device)

A device outside the token's scope answers exactly as an unknown one: 404.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

from pymongo.errors import PyMongoError
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from waygps import metrics
from waygps.config import Config, TokenConfig
from waygps.history import trips as trips_mod
from waygps.history.export import CONTENT_TYPES, FORMATS, encoder_for
from waygps.history.query import TrackQuery
from waygps.history.source import open_cursor, points_of
from waygps.stats.report import daily, day_filter
from waygps.web.api import params
from waygps.web.api.errors import ApiError, bad_parameter, not_found, write_error, write_json
from waygps.web.api.openapi import spec
from waygps.web.api.stream import TrackStream
from waygps.web.websocket import find_token, vehicle_summary

log = Logger(namespace="waygps.api")

IMEI = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class ApiResource(Resource):
    isLeaf = True

    def __init__(self, config: Config, store: Any, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.reactor = reactor
        self.rules = trips_mod.TripRules.from_config(config.history)

    # --- dispatch ------------------------------------------------------------------
    def render(self, request: Any) -> Any:
        request._disconnected = False

        def gone(_: Any) -> None:
            request._disconnected = True

        request.notifyFinish().addErrback(gone)
        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if segments and segments[-1] == "":
            segments = segments[:-1]
        endpoint = "unknown"
        try:
            handler, endpoint, args = self._route(segments)
            if request.method != b"GET":
                raise ApiError(405, "method_not_allowed", f"{request.method.decode('latin-1')} is not allowed here; "
                               "use GET", headers={b"allow": b"GET"})
            d = handler(request, *args)
        except ApiError as e:
            write_error(request, e, endpoint)
            return NOT_DONE_YET
        d.addErrback(self._failed, request, endpoint)
        return NOT_DONE_YET

    def _route(self, s: list[str]) -> tuple[Callable[..., Any], str, tuple]:
        if s == ["openapi.json"]:
            return self.openapi, "openapi", ()
        if s == ["devices"]:
            return self.devices, "devices", ()
        if len(s) == 2 and s[0] == "devices":
            return self.device, "device", (s[1],)
        if len(s) == 3 and s[0] == "devices" and s[2] in ("positions", "trips", "stops"):
            return getattr(self, s[2]), s[2], (s[1],)
        if s == ["stats", "daily"]:
            return self.stats_daily, "stats_daily", ()
        raise not_found(f"no such endpoint: /api/v1/{'/'.join(s)}")

    def _failed(self, failure: Any, request: Any, endpoint: str) -> None:
        if failure.check(ApiError):
            write_error(request, failure.value, endpoint)
            return
        if failure.check(PyMongoError, ConnectionError, TimeoutError, CancelledError, ConnectionLost,
                         ConnectionDone):
            metrics.STORE_FAILURES.labels("api_read").inc()
            log.warn("api {endpoint}: the store could not answer: {why}", endpoint=endpoint,
                     why=failure.getErrorMessage())
            write_error(request, ApiError(503, "store_unavailable",
                                          f"the store could not answer: {failure.getErrorMessage()}"), endpoint)
            return
        log.failure("api {endpoint}: failed", failure, endpoint=endpoint)
        write_error(request, ApiError(500, "internal_error", "internal error (logged on the server)"), endpoint)

    # --- authorisation -----------------------------------------------------------------
    def token(self, request: Any) -> TokenConfig:
        header = request.getHeader(b"authorization")
        challenge = {b"www-authenticate": b'Bearer realm="waygps"'}
        if not header:
            raise ApiError(401, "unauthorized", "an Authorization: Bearer token is required", headers=challenge)
        match = BEARER.match(header.decode("latin-1"))
        if match is None:
            raise ApiError(401, "unauthorized", "the Authorization header must be: Bearer TOKEN", headers=challenge)
        scope = find_token(self.config.websocket.tokens, match.group(1))
        if scope is None:
            raise ApiError(401, "unauthorized", "unknown token", headers=challenge)
        return scope

    @inlineCallbacks
    def vehicle(self, scope: TokenConfig, imei: str) -> Any:
        """The device's ``Veiculo`` document; 404 when unknown or outside the scope (the same answer)."""
        if not IMEI.match(imei) or not scope.allows(imei):
            raise not_found(f"device {imei} not found")
        doc = yield self.store.collection("vehicles").find_one({"IMEI": imei})
        if not doc:
            raise not_found(f"device {imei} not found")
        return doc

    # --- endpoints -----------------------------------------------------------------------
    @inlineCallbacks
    def openapi(self, request: Any) -> Any:
        write_json(request, 200, spec(), "openapi")
        yield None

    @inlineCallbacks
    def devices(self, request: Any) -> Any:
        scope = self.token(request)
        query: dict[str, Any] = {}
        if scope.devices is not None:
            query = {"IMEI": {"$in": sorted(scope.devices)}}
        docs = yield self.store.collection("vehicles").find(query)
        items = sorted((vehicle_summary(doc) for doc in docs), key=lambda v: str(v["mobile_id"]))
        write_json(request, 200, {"devices": items, "count": len(items)}, "devices")

    @inlineCallbacks
    def device(self, request: Any, imei: str) -> Any:
        doc = yield self.vehicle(self.token(request), imei)
        write_json(request, 200, vehicle_summary(doc), "device")

    def _track_query(self, request: Any, imei: str, with_limit: bool) -> TrackQuery:
        start, end = params.time_range(request.args, _utc(self.reactor.seconds()))
        valid = params.boolean(request.args, "valid")
        limit = params.count(request.args, "limit") if with_limit else 0
        return TrackQuery(imei=imei, start=start, end=end, valid=valid, limit=limit)

    @inlineCallbacks
    def positions(self, request: Any, imei: str) -> Any:
        scope = self.token(request)
        fmt = params.choice(request.args, "format", FORMATS, "json")
        query = self._track_query(request, imei, with_limit=True)
        yield self.vehicle(scope, imei)
        cursor = open_cursor(self.store.collection("positions"), query, self.config.history.batch_size)
        first = yield cursor.next_batch()  # a store error here is still a JSON 503
        if request._disconnected:
            cursor.close()
            return
        request.setResponseCode(200)
        request.setHeader(b"content-type", CONTENT_TYPES[fmt].encode())
        request.setHeader(b"cache-control", b"no-store")
        if fmt in ("gpx", "csv"):
            name = f"{imei}_{query.start.strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
            request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode())
        encoder = encoder_for(fmt, imei)
        log.info("api: exporting {imei} {start} .. {end} as {fmt}", imei=imei, start=query.start.isoformat(),
                 end=query.end.isoformat(), fmt=fmt)
        TrackStream(request, cursor, encoder,
                    lambda how: metrics.API_REQUESTS.labels("positions", "200" if how == "done" else how).inc()
                    ).start(first)

    @inlineCallbacks
    def _detect(self, request: Any, imei: str) -> Any:
        scope = self.token(request)
        query = self._track_query(request, imei, with_limit=False)
        yield self.vehicle(scope, imei)
        detector = trips_mod.TripDetector(self.rules)
        cursor = open_cursor(self.store.collection("positions"), TrackQuery(imei, query.start, query.end, valid=True),
                             self.config.history.batch_size)
        try:
            while not cursor.exhausted:
                docs = yield cursor.next_batch()
                if request._disconnected:
                    return None, query
                for point in points_of(docs):
                    detector.add(point)
        finally:
            cursor.close()
        detector.finish()
        return detector.take(), query

    def _range(self, imei: str, query: TrackQuery) -> dict[str, Any]:
        return {"imei": imei, "from": trips_mod.iso(query.start), "to": trips_mod.iso(query.end),
                "rules": {"moving_speed_kmh": self.rules.moving_speed_kmh,
                          "min_stop_seconds": self.rules.min_stop_seconds,
                          "max_gap_seconds": self.rules.max_gap_seconds,
                          "min_trip_distance_m": self.rules.min_trip_distance_m,
                          "use_ignition": self.rules.use_ignition}}

    @inlineCallbacks
    def trips(self, request: Any, imei: str) -> Any:
        found, query = yield self._detect(request, imei)
        if found is None:
            return
        items = [trips_mod.trip_json(r) for r in found if isinstance(r, trips_mod.Trip)]
        write_json(request, 200, {**self._range(imei, query), "trips": items, "count": len(items)}, "trips")

    @inlineCallbacks
    def stops(self, request: Any, imei: str) -> Any:
        found, query = yield self._detect(request, imei)
        if found is None:
            return
        items = [trips_mod.stop_json(r) for r in found if isinstance(r, trips_mod.Stop)]
        write_json(request, 200, {**self._range(imei, query), "stops": items, "count": len(items)}, "stops")

    @inlineCallbacks
    def stats_daily(self, request: Any) -> Any:
        scope = self.token(request)
        if scope.devices is not None:
            raise ApiError(403, "forbidden", "reception statistics need a token that sees every device")
        start = params.day(request.args, "from")
        end = params.day(request.args, "to")
        if start and end and start > end:
            raise bad_parameter("from", f"must not be after to ({start} > {end})")
        listener = params.arg(request.args, "listener")
        docs = yield self.store.db[self.config.stats.collection].find(day_filter(start, end, listener))
        days = sorted((daily(doc) for doc in docs), key=lambda d: (str(d["day"]), str(d["listener"])))
        write_json(request, 200, {"from": start, "to": end, "listener": listener, "days": days}, "stats_daily")
