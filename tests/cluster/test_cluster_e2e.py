"""Two real instances on one replica-set store behave as one server (issue: cluster).

Each test starts instances A and B in this process on the embedded store
(secantusd-py as a one-node replica set), with real device sockets and real
WebSocket clients.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from tests.cluster.cluster_support import TOKEN
from tests.commands.test_commands_e2e import GV50_IMEI, connect, gtfri, gv50_ack, gv50_command, until
from tests.web.feed_support import connect as ws_connect


@inlineCallbacks
def feed_client(instance: Any) -> Any:
    """A WebSocket client of ``instance``, past its ``initial_state``; its messages in ``client.seen``."""
    factory = ws_connect(instance.web_port, f"?token={TOKEN}")
    yield factory.opened
    first = yield factory.messages.get()
    assert first["type"] == "initial_state"
    factory.seen = []

    def collect(message: Any) -> None:
        factory.seen.append(message)
        factory.messages.get().addCallback(collect)

    factory.messages.get().addCallback(collect)
    return factory


def updates(client: Any, kind: str = "gps_update") -> list[dict]:
    return [m for m in client.seen if m["type"] == kind]


def sack(count: int) -> bytes:
    return f"+SACK:{count:04X}$".encode()


@pytest_twisted.inlineCallbacks
def test_device_on_a_is_seen_by_a_dashboard_on_b(start_instance: Any) -> None:
    a = yield start_instance("a")
    b = yield start_instance("b")
    assert a.service.cluster.fleet_feed and b.service.cluster.fleet_feed
    dashboard = yield feed_client(b)
    device = yield connect(a.port())
    device.transport.write(gtfri(12.0, 1))
    yield until(lambda: sack(1) in device.received, "the SACK from A")
    yield until(lambda: updates(dashboard), "B's dashboard gets the gps_update")
    [update] = updates(dashboard)
    assert update["mobile_id"] == GV50_IMEI and update["data"]["velocidad"] == 12.0
    yield until(lambda: [m for m in updates(dashboard, "mobile_status") if m["status"] == "conectado"],
                "B's dashboard sees the device connected to A")
    assert b.sessions.get(GV50_IMEI) is None and a.sessions.get(GV50_IMEI) is not None


@pytest_twisted.inlineCallbacks
def test_device_moves_mid_stream_nothing_lost_or_duplicated_online_throughout(start_instance: Any) -> None:
    a = yield start_instance("a")
    b = yield start_instance("b")
    dashboard = yield feed_client(a)
    db = a.sync_db()
    first = yield connect(a.port())
    for count in range(1, 6):
        first.transport.write(gtfri(10.0 + count, count))
        yield until(lambda c=count: sack(c) in first.received, f"SACK {count} from A")
    # The link "dies" without a FIN reaching A: the device reconnects through the balancer to B.
    second = yield connect(b.port())
    for count in range(6, 11):
        second.transport.write(gtfri(10.0 + count, count))
        yield until(lambda c=count: sack(c) in second.received, f"SACK {count} from B")
    yield until(lambda: first.lost, "A closes its connection once the store names B as the holder")
    yield a.persistence.flush()
    yield b.persistence.flush()
    assert db["DadosVeiculo"].count_documents({"IMEI": GV50_IMEI}) == 10
    vehicle = db["Veiculo"].find_one({"IMEI": GV50_IMEI})
    assert vehicle["online"] is True and vehicle["instance"] == "b"
    yield until(lambda: len(updates(dashboard)) >= 10, "ten gps_updates on A's dashboard")
    speeds = sorted(u["data"]["velocidad"] for u in updates(dashboard))
    assert speeds == [10.0 + c for c in range(1, 11)]  # each report once
    statuses = [m["status"] for m in updates(dashboard, "mobile_status")]
    assert "desconectado" not in statuses
    assert a.service.cluster.takeover.closed == 1


@pytest_twisted.inlineCallbacks
def test_block_queued_while_the_device_is_on_b_is_sent_once_by_b(start_instance: Any) -> None:
    a = yield start_instance("a")
    b = yield start_instance("b")
    db = a.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False, "comandoBloqueo": None})
    on_a = yield connect(a.port())
    on_a.transport.write(gtfri(0.0, 1))
    yield until(lambda: sack(1) in on_a.received, "SACK from A")
    on_b = yield connect(b.port())
    on_b.transport.write(gtfri(0.0, 2))
    yield until(lambda: sack(2) in on_b.received, "SACK from B")
    yield until(lambda: on_a.lost, "A lets go of the device")
    yield until(lambda: (db["Veiculo"].find_one({"IMEI": GV50_IMEI}) or {}).get("instance") == "b", "B holds it")

    db["Veiculo"].update_one({"IMEI": GV50_IMEI}, {"$set": {"comandoBloqueo": True}})
    [(level, serial)] = yield until(gv50_command(on_b), "AT+GTOUT on B's connection")
    assert level == b"1"
    on_b.transport.write(gv50_ack(serial.decode(), 3))
    doc = yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "confirmed"}), "confirmed")
    assert doc["instance"] == "b" and doc["attempts"] == 1
    assert [h["status"] for h in doc["history"]].count("sent") == 1
    assert gv50_command(on_a)() == []
    assert db["Comando"].count_documents({"IMEI": GV50_IMEI}) == 1
