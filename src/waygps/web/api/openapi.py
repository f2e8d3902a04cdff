"""The OpenAPI 3.1 description served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from waygps import __version__


def _param(name: str, description: str, schema: dict[str, Any], where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


_IMEI = _param("imei", "the device's IMEI", {"type": "string"}, where="path", required=True)
_FROM = _param("from", "start (inclusive): ISO 8601 time, naive = UTC, or a day YYYY-MM-DD; "
               "default: 24 hours before `to`", {"type": "string"})
_TO = _param("to", "end (exclusive): ISO 8601 time or a day (meaning the end of that day); default: now",
             {"type": "string"})
_ERRORS = {
    "400": {"$ref": "#/components/responses/Error"},
    "401": {"$ref": "#/components/responses/Error"},
    "404": {"$ref": "#/components/responses/Error"},
    "503": {"$ref": "#/components/responses/Error"},
}
_PLACE = {"type": "object", "properties": {"time": {"type": "string", "format": "date-time"},
                                            "latitude": {"type": "number"}, "longitude": {"type": "number"}}}


def spec() -> dict[str, Any]:
    json_body = {"application/json": {"schema": {"type": "object"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "WayGPS API", "version": __version__,
                 "description": "History, trips, stops and reception statistics of a WayGPS server."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token of [[websocket.tokens]]; its device scope "
                                                          "applies"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message", "status"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"}, "status": {"type": "integer"},
                    "parameter": {"type": "string", "description": "the bad query parameter, if one"}}},
                "Trip": {"type": "object", "properties": {
                    "start": _PLACE, "end": _PLACE, "duration_s": {"type": "number"},
                    "distance_m": {"type": "number"}, "odometer_distance_m": {"type": ["number", "null"]},
                    "max_speed_kmh": {"type": "number"}, "average_speed_kmh": {"type": "number"},
                    "points": {"type": "integer"}}},
                "Stop": {"type": "object", "properties": {
                    "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
                    "duration_s": {"type": "number"}, "latitude": {"type": "number"},
                    "longitude": {"type": "number"}}},
            },
            "responses": {"Error": {"description": "an error",
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
        "paths": {
            "/devices": {"get": {"summary": "devices in the token's scope, with their state (Veiculo)",
                                 "responses": {"200": {"description": "devices", "content": json_body}, **_ERRORS}}},
            "/devices/{imei}": {"get": {"summary": "one device's state", "parameters": [_IMEI],
                                        "responses": {"200": {"description": "the device", "content": json_body},
                                                      **_ERRORS}}},
            "/devices/{imei}/positions": {"get": {
                "summary": "the track, oldest first, streamed",
                "parameters": [_IMEI, _FROM, _TO,
                               _param("format", "json (default), geojson, gpx or csv",
                                      {"type": "string", "enum": ["json", "geojson", "gpx", "csv"]}),
                               _param("valid", "true: only valid fixes; false: only invalid ones",
                                      {"type": "boolean"}),
                               _param("limit", "at most this many points (0: all)", {"type": "integer", "minimum": 0})],
                "responses": {"200": {"description": "the track", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/geo+json": {"schema": {"type": "object"}},
                    "application/gpx+xml": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}}}}, **_ERRORS}}},
            "/devices/{imei}/trips": {"get": {
                "summary": "trips (split by ignition, else by speed and time gaps)", "parameters": [_IMEI, _FROM, _TO],
                "responses": {"200": {"description": "trips", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"trips": {"type": "array",
                                                               "items": {"$ref": "#/components/schemas/Trip"}}}}}}},
                    **_ERRORS}}},
            "/devices/{imei}/stops": {"get": {
                "summary": "stops between trips", "parameters": [_IMEI, _FROM, _TO],
                "responses": {"200": {"description": "stops", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"stops": {"type": "array",
                                                               "items": {"$ref": "#/components/schemas/Stop"}}}}}}},
                    **_ERRORS}}},
            "/stats/daily": {"get": {
                "summary": "daily reception statistics per listener (tokens that see every device)",
                "parameters": [_param("from", "first day, YYYY-MM-DD", {"type": "string", "format": "date"}),
                               _param("to", "last day (inclusive), YYYY-MM-DD", {"type": "string", "format": "date"}),
                               _param("listener", "one listener's name", {"type": "string"})],
                "responses": {"200": {"description": "days", "content": json_body}, "403":
                              {"$ref": "#/components/responses/Error"}, **_ERRORS}}},
            "/openapi.json": {"get": {"summary": "this description", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1", "content": json_body}}}},
        },
    }
