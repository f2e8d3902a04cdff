"""The WebSocket feed: tokens and scopes, initial state, live updates of stored reports only, slow clients."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from feed_support import connect
from waygps.config import TokenConfig
from waygps.events import DeviceConnected, Position
from waygps.web.websocket import find_token, message_for

NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
IMEI = "862894020180553"
OTHER = "356307042441013"


def position(imei: str = IMEI, lat: float = -17.72, key: str = "k1") -> Position:
    return Position(imei=imei, protocol="test", device_time=NOW, server_time=NOW, event="GTFRI", key=key,
                    valid=True, latitude=lat, longitude=-63.1, speed=20.0, course=147.0, altitude=329.7,
                    ignition=True, attributes={"battery": 88})


def tokens() -> dict:
    return {"tokens": [{"token": "all-secret", "devices": "*"}, {"token": "one-secret", "devices": [IMEI]}]}


@pytest_twisted.inlineCallbacks
def test_refused_without_a_valid_token(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    for query, headers in (("", None), ("?token=wrong", None)):
        client = connect(server.web_port, query, headers)
        try:
            yield client.opened
        except ConnectionError:
            pass
        else:
            raise AssertionError(f"connection with {query!r} should be refused")


@pytest_twisted.inlineCallbacks
def test_initial_state_and_live_updates_in_scope(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    vehicles = server.store.collection("vehicles")
    yield vehicles.insert_one({"IMEI": IMEI, "ds_placa": "ABC1D23", "online": False})
    yield vehicles.insert_one({"IMEI": OTHER, "ds_placa": "XYZ9Z99", "online": False})

    everyone = connect(server.web_port, "?token=all-secret")
    scoped = connect(server.web_port, headers={"Authorization": "Bearer one-secret"})
    yield everyone.opened
    scoped_protocol = yield scoped.opened
    state = yield everyone.messages.get()
    assert state["type"] == "initial_state"
    assert {m["mobile_id"] for m in state["mobiles"]} == {IMEI, OTHER}
    state = yield scoped.messages.get()
    assert [m["mobile_id"] for m in state["mobiles"]] == [IMEI]
    assert state["mobiles"][0]["patente"] == "ABC1D23"

    yield server.persistence.deliver([position(OTHER, key="o1")])
    yield server.persistence.deliver([position(IMEI, key="i1")])
    first = yield everyone.messages.get()
    second = yield everyone.messages.get()
    assert [first["mobile_id"], second["mobile_id"]] == [OTHER, IMEI]
    update = yield scoped.messages.get()
    assert update["type"] == "gps_update" and update["mobile_id"] == IMEI
    assert update["data"]["latitud"] == -17.72 and update["data"]["bateria"] == 88
    assert update["data"]["fecha_gps"] == NOW.isoformat().replace("+00:00", "Z")
    stored = yield server.store.collection("positions").find_one({"IMEI": IMEI})
    assert stored is not None

    scoped.messages.pending.clear()
    scoped_protocol.sendMessage(json.dumps({"type": "subscribe_mobile", "mobile_id": OTHER}).encode())
    error = yield scoped.messages.get()
    assert error["type"] == "error" and OTHER in error["message"]


@pytest_twisted.inlineCallbacks
def test_subscription_narrows_the_feed(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    client = connect(server.web_port, "?token=all-secret")
    protocol = yield client.opened
    yield client.messages.get()  # initial_state
    protocol.sendMessage(json.dumps({"type": "subscribe_mobile", "mobile_id": OTHER}).encode())
    yield deferLater(reactor, 0.2, lambda: None)
    yield server.persistence.deliver([position(IMEI, key="a")])
    yield server.persistence.deliver([position(OTHER, key="b")])
    update = yield client.messages.get()
    assert update["mobile_id"] == OTHER
    assert not client.messages.pending


def test_tokens_compare_by_digest() -> None:
    import hashlib

    scope = TokenConfig(token_sha256=hashlib.sha256(b"abc").hexdigest(), devices=frozenset({IMEI}))
    assert find_token([scope], "abc") is scope
    assert find_token([scope], "abd") is None
    assert message_for(DeviceConnected(imei=IMEI, protocol="gv50", server_time=NOW, peer="x", transport="tcp",
                                       listener="l"))[1]["status"] == "conectado"
