"""Change documents into events (sans-IO), a resume token too old, and the feed's answer to it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest_twisted
from pymongo.errors import AutoReconnect, OperationFailure
from twisted.internet import reactor

from tests.commands.test_commands_e2e import until
from tests.web.feed_support import connect as ws_connect
from waygps.cluster.changes import ChangeReader, alarm_document, position_from_document
from waygps.cluster.follower import ChangeFollower, token_lost
from waygps.config import Collections
from waygps.documents import position_document
from waygps.events import Alarm, CommandStatus, DeviceConnected, DeviceDisconnected, FeedReset, Position

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"


def change(coll: str, doc: dict, op: str = "update", fields: dict | None = None) -> dict:
    out = {"operationType": op, "ns": {"db": "x", "coll": coll}, "fullDocument": doc}
    if op == "update":
        out["updateDescription"] = {"updatedFields": fields or {}, "removedFields": []}
    return out


def test_a_stored_position_comes_back_as_the_same_report() -> None:
    original = Position(imei=IMEI, protocol="gv50", device_time=WHEN, server_time=WHEN, event="GTFRI", key="7",
                        valid=True, latitude=-17.7, longitude=-63.1, speed=20.0, course=147.0, altitude=329.7,
                        ignition=True, buffered=True, attributes={"battery_percent": 88})
    doc = position_document(original)
    doc["dataDevice"] = doc["dataDevice"].replace(tzinfo=None)  # as pymongo reads it back
    [event] = ChangeReader(Collections()).read(change("DadosVeiculo", doc, "insert"))
    assert isinstance(event, Position)
    for name in ("imei", "protocol", "device_time", "event", "valid", "latitude", "longitude", "speed",
                 "course", "altitude", "ignition", "buffered"):
        assert getattr(event, name) == getattr(original, name), name
    assert event.attributes["battery_percent"] == 88 and event.attributes["stored_id"] == doc["_id"]
    assert position_from_document({"_id": "x"}).imei == ""  # a foreign document does not raise


def test_vehicle_changes_give_one_status_per_transition() -> None:
    reader = ChangeReader(Collections())
    base = {"IMEI": IMEI, "protocol": "gv50", "lastSeen": WHEN}
    connected = reader.read(change("Veiculo", {**base, "online": True, "instance": "a"}, "insert"))
    assert [type(e) for e in connected] == [DeviceConnected] and connected[0].instance == "a"
    assert reader.read(change("Veiculo", {**base, "online": True, "instance": "a"}, fields={"lastSeen": 1})) == []
    moved = reader.read(change("Veiculo", {**base, "online": True, "instance": "b"}, fields={"instance": "b"}))
    assert [type(e) for e in moved] == [DeviceConnected] and moved[0].instance == "b"
    gone = reader.read(change("Veiculo", {**base, "online": False, "instance": "b"}, fields={"online": False}))
    assert [type(e) for e in gone] == [DeviceDisconnected]
    assert reader.read(change("Veiculo", {**base, "online": False, "instance": "b"}, fields={"x": 1})) == []
    # first sight of another device through a write that did not touch its state: nothing to say
    assert reader.read(change("Veiculo", {"IMEI": "2", "online": True}, fields={"lastSeen": 1})) == []
    assert reader.holder(change("Veiculo", {**base, "online": True, "instance": "b"})) == (IMEI, "b", WHEN)
    assert reader.holder(change("Veiculo", {**base, "online": False, "instance": "b"})) is None


def test_command_and_alarm_changes() -> None:
    reader = ChangeReader(Collections())
    command = {"_id": "c1", "IMEI": IMEI, "type": "block", "status": "sent", "updatedAt": WHEN,
               "history": [{"status": "pending", "reason": "queued"}, {"status": "sent", "reason": "written"}]}
    [status] = reader.read(change("Comando", command, fields={"status": "sent"}))
    assert isinstance(status, CommandStatus) and (status.status, status.reason) == ("sent", "written")
    assert reader.read(change("Comando", command, fields={"serials": []})) == []
    alarm = Alarm(imei=IMEI, protocol="gv50", server_time=WHEN, alarm="sos", message="SOS", position_id="p1")
    [back] = reader.read(change("Alarme", alarm_document(alarm), "insert"))
    assert back == alarm
    assert alarm_document(alarm)["_id"] == alarm_document(alarm)["_id"]
    assert reader.read({"operationType": "delete", "ns": {"coll": "Veiculo"}}) == []
    assert reader.read(change("Veiculo", None, "update")) == []  # type: ignore[arg-type]


class _Stream:
    def __init__(self, changes: list[dict], then_fail: bool) -> None:
        self.changes = list(changes)
        self.then_fail = then_fail
        self.resume_token = {"_data": "now"}

    def __enter__(self) -> "_Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def try_next(self) -> dict | None:
        if self.changes:
            item = self.changes.pop(0)
            self.resume_token = item["_id"]
            return item
        if self.then_fail:
            raise AutoReconnect("connection closed")
        import time

        time.sleep(0.02)
        return None


def _insert(token: str, doc_id: str) -> dict:
    return {"_id": {"_data": token}, "operationType": "insert", "ns": {"coll": "DadosVeiculo"},
            "fullDocument": {"_id": doc_id, "IMEI": IMEI}}


class _Client:
    """pymongo's surface the follower uses. Every resume token is too old (a long outage): the saved
    one at startup, and the one it holds when its stream breaks."""

    def __init__(self, uri: str) -> None:
        self.resumed_with: list[Any] = []

    def __getitem__(self, name: str) -> "_Client":
        return self

    def watch(self, pipeline: Any, **options: Any) -> _Stream:
        self.resumed_with.append(options.get("resume_after"))
        if options.get("resume_after") is not None:
            raise OperationFailure("resume point no longer in the oplog", code=286)
        if len(self.resumed_with) == 2:
            return _Stream([_insert("1", "p1")], then_fail=True)
        return _Stream([_insert("2", "p2")], then_fail=False)

    def close(self) -> None:
        pass


@pytest_twisted.inlineCallbacks
def test_a_token_too_old_restarts_from_now_and_resets_the_feed() -> None:
    got: list[Any] = []
    resets: list[str] = []
    clients: list[_Client] = []

    def factory(uri: str) -> _Client:
        clients.append(_Client(uri))
        return clients[-1]

    follower = ChangeFollower("mongodb://x/", "db", ["DadosVeiculo"], reactor, on_changes=got.extend,
                              on_reset=resets.append, load_token=lambda client: {"_data": "saved"},
                              save_token=lambda client, token: None, client_factory=factory)
    yield follower.start()
    yield until(lambda: len(got) == 2, "the changes before and after the reset")
    yield follower.stop()
    # the saved token of a previous run: started from now, no reset (no dashboard was waiting)
    # the token held when the stream broke: logged, started from now, the feed reset once
    assert clients[0].resumed_with[:4] == [{"_data": "saved"}, None, {"_data": "1"}, None]
    assert len(resets) == 1 and "no longer" in resets[0] and follower.resets == 1
    assert [change["fullDocument"]["_id"] for change in got] == ["p1", "p2"]
    assert token_lost(OperationFailure("x", code=280)) and not token_lost(OperationFailure("x", code=11600))


@pytest_twisted.inlineCallbacks
def test_feed_reset_sends_initial_state_again(start_server: Any) -> None:
    server = yield start_server(websocket={"tokens": [{"token": "t", "devices": "*"}]})
    yield server.store.collection("vehicles").insert_one({"IMEI": IMEI, "online": True})
    client = ws_connect(server.web_port, "?token=t")
    yield client.opened
    first = yield client.messages.get()
    assert first["type"] == "initial_state"
    server.service.feed.publish(FeedReset(reason="test", time=WHEN))
    again = yield client.messages.get()
    assert again["type"] == "initial_state" and again["mobiles"][0]["mobile_id"] == IMEI
