"""The feed's fixes, with real WebSocket clients on a running service: what a map needs to be right.

initial_state carries id / bateria / ultima_actualizacion and UTC dates ending in Z; a report
older than the newest one sent never moves the map; a connection ending on a protocol error
is ``mobile_status: error``; the store going away and coming back is a ``system_alert`` to all.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from browser_support import FakeDevice, gtfri, recent
from feed_support import connect, get
from waygps.events import Position, StoreStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IMEI = "862894020180553"
OTHER = "356307042441013"
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def tokens() -> dict:
    return {"tokens": [{"token": "all-secret", "devices": "*"}, {"token": "one-secret", "devices": [IMEI]}]}


def position(minutes: float, lat: float, key: str, imei: str = IMEI) -> Position:
    when = T0 + timedelta(minutes=minutes)
    return Position(imei=imei, protocol="gv50", device_time=when, server_time=T0 + timedelta(hours=1),
                    event="GTFRI", key=key, valid=True, latitude=lat, longitude=-63.1, speed=30.0, course=90.0,
                    ignition=True, attributes={"battery": 71})


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest_twisted.inlineCallbacks
def test_initial_state_has_ids_battery_last_update_and_zulu_dates(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    # What MongoDB gives back: naive datetimes that mean UTC.
    yield server.store.collection("vehicles").insert_one({
        "IMEI": IMEI, "ds_placa": "ABC1D23", "online": True, "latitude": -17.7, "longitude": -63.1,
        "dataDevice": datetime(2026, 3, 9, 11, 35, 48), "lastSeen": datetime(2026, 3, 9, 11, 36, 0),
        "protocol": "gv50"})
    yield server.persistence.deliver([position(0, -17.0, "k0", imei=OTHER)])  # a battery level the feed saw
    client = connect(server.web_port, "?token=all-secret")
    yield client.opened
    state = yield get(client.messages)
    assert state["type"] == "initial_state"
    by_id = {m["id"]: m for m in state["mobiles"]}
    mine = by_id[IMEI]
    assert mine["mobile_id"] == IMEI and mine["patente"] == "ABC1D23" and mine["protocolo"] == "gv50"
    assert mine["fecha_gps"] == "2026-03-09T11:35:48Z"
    assert mine["ultima_actualizacion"] == "2026-03-09T11:36:00Z"
    assert "bateria" in mine and mine["bateria"] is None  # Veiculo has no battery and none was seen
    yield server.persistence.flush()
    again = connect(server.web_port, "?token=all-secret")
    yield again.opened
    state = yield get(again.messages)
    assert {m["id"]: m for m in state["mobiles"]}[OTHER]["bateria"] == 71


@pytest_twisted.inlineCallbacks
def test_a_report_older_than_the_newest_sent_is_stored_but_not_sent(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    client = connect(server.web_port, "?token=all-secret")
    yield client.opened
    yield get(client.messages)  # initial_state
    stale_before = sample("waygps_websocket_stale_updates_total")
    yield server.persistence.deliver([position(30, -17.30, "new")])
    first = yield get(client.messages)
    assert first["data"]["latitud"] == -17.30 and first["data"]["fecha_gps"].endswith("Z")
    # A +BUFF replay three hours... here: twenty minutes older. Stored, not sent.
    yield server.persistence.deliver([position(10, -17.10, "replayed")])
    yield server.persistence.deliver([position(31, -17.31, "next")])
    second = yield get(client.messages)
    assert second["data"]["latitud"] == -17.31  # the replay never reached the client
    assert sample("waygps_websocket_stale_updates_total") == stale_before + 1
    stored = yield server.store.collection("positions").find({"IMEI": IMEI})
    assert {d["latitude"] for d in stored} == {-17.30, -17.10, -17.31}


@pytest_twisted.inlineCallbacks
def test_a_late_report_older_than_the_map_state_does_not_move_a_new_client(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    yield server.persistence.deliver([position(30, -17.30, "new")])
    yield server.persistence.flush()
    yield server.service.stopService()  # a restart: the feed knows only what Veiculo says
    server2 = yield start_server(websocket=tokens())
    client = connect(server2.web_port, "?token=all-secret")
    yield client.opened
    state = yield get(client.messages)
    assert state["mobiles"][0]["ultimo_lat"] == -17.30
    yield server2.persistence.deliver([position(5, -17.05, "late")])
    yield server2.persistence.deliver([position(40, -17.40, "newer")])
    update = yield get(client.messages)
    assert update["data"]["latitud"] == -17.40


@pytest_twisted.inlineCallbacks
def test_a_connection_ending_on_a_protocol_error_is_mobile_status_error(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "transport": "tcp"}], websocket=tokens())
    client = connect(server.web_port, "?token=one-secret")
    yield client.opened
    yield get(client.messages)  # initial_state
    device = FakeDevice()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    yield device.report(gtfri(IMEI, -17.7, -63.1, recent(5), 1))
    online = yield get(client.messages)
    assert (online["type"], online["status"]) == ("mobile_status", "conectado")
    update = yield get(client.messages)
    assert update["type"] == "gps_update" and update["data"]["bateria"] == 87
    device.transport.write(b"\x00\x01garbage" * 1000)  # garbage without a frame: the codec closes
    yield device.closed
    status = yield get(client.messages)
    assert (status["type"], status["mobile_id"], status["status"]) == ("mobile_status", IMEI, "error")
    assert "garbage" in status["message"] and status["fecha"].endswith("Z")


@pytest_twisted.inlineCallbacks
def test_a_plain_disconnection_is_desconectado(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "transport": "tcp"}], websocket=tokens())
    client = connect(server.web_port, "?token=one-secret")
    yield client.opened
    yield get(client.messages)
    device = FakeDevice()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    yield device.report(gtfri(IMEI, -17.7, -63.1, recent(5), 1))
    yield get(client.messages)
    yield get(client.messages)
    device.transport.loseConnection()
    status = yield get(client.messages)
    assert (status["type"], status["status"]) == ("mobile_status", "desconectado") and "message" not in status


@pytest_twisted.inlineCallbacks
def test_store_unavailable_and_back_reach_every_client_whatever_its_scope(start_server: Any) -> None:
    server = yield start_server(websocket=tokens())
    everyone = connect(server.web_port, "?token=all-secret")
    scoped = connect(server.web_port, "?token=one-secret")
    yield everyone.opened
    yield scoped.opened
    yield get(everyone.messages)
    yield get(scoped.messages)
    when = datetime(2026, 3, 9, 12, 0, tzinfo=timezone.utc)
    server.bus.publish(StoreStatus(available=False, time=when, detail="AutoReconnect: refused"))
    server.bus.publish(StoreStatus(available=True, time=when + timedelta(seconds=5)))
    for client in (everyone, scoped):
        down = yield get(client.messages)
        up = yield get(client.messages)
        assert (down["type"], down["alert_type"]) == ("system_alert", "store_unavailable")
        assert (up["type"], up["alert_type"]) == ("system_alert", "store_available")
        assert down["fecha"] == "2026-03-09T12:00:00Z"
        assert "refused" not in down["message"]  # the driver's error text stays in the server's log
