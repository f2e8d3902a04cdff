"""Helpers of the API tests: a started server with tokens, tracks inserted with pymongo, HTTP GETs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "history"))

from history_tracks import documents  # noqa: E402

ALL = "all-secret"
ONE = "one-secret"
IMEI = "862894020180553"
OTHER = "356307042441013"


def tokens() -> dict:
    return {"tokens": [{"token": ALL, "devices": "*"}, {"token": ONE, "devices": [IMEI]}]}


def insert_track(server: Any, imei: str, points: list) -> None:
    db = server.sync_db()
    docs = list(documents(imei, points))
    db[server.config.mongodb.collections.positions].insert_many(docs)
    last = points[-1]
    db[server.config.mongodb.collections.vehicles].update_one(
        {"IMEI": imei}, {"$set": {"IMEI": imei, "latitude": last.latitude, "longitude": last.longitude,
                                   "speed": last.speed, "dataDevice": last.time, "online": False}}, upsert=True)
    db.client.close()


@inlineCallbacks
def get(server: Any, path: str, token: str | None = ALL, method: bytes = b"GET") -> Any:
    headers = Headers()
    if token is not None:
        headers.addRawHeader(b"authorization", f"Bearer {token}".encode())
    url = f"http://127.0.0.1:{server.web_port}/api/v1{path}".encode()
    response = yield Agent(reactor).request(method, url, headers)
    body = yield readBody(response)
    return response, body


def content_type(response: Any) -> str:
    return response.headers.getRawHeaders(b"content-type")[0].decode()


def error_of(response: Any, body: bytes) -> dict:
    assert content_type(response).startswith("application/json"), body
    return json.loads(body)
