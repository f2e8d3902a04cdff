"""CommandService against the real embedded store, fake device connections, a task.Clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest_twisted
from bson import ObjectId

from commands_harness import FakeConnection, harness  # noqa: F401  (fixture)
from waygps import metrics
from waygps.commands.record import new_command

IMEI = "862894020180553"
OTHER = "352093081452251"


def counter(status: str) -> float:
    return metrics.COMMANDS.labels(status)._value.get()


@pytest_twisted.inlineCallbacks
def test_block_intent_goes_to_the_connected_device_and_its_ack_confirms_it(harness):
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=None)
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert device.sent == []

    harness.vehicle(IMEI, comandoBloqueo=True)
    yield harness.advance(2.0)

    assert [c.type for c in device.sent] == ["block"]
    command = device.sent[0]
    doc = harness.only_command(IMEI)
    assert str(doc["_id"]) == command.id
    assert doc["status"] == "sent" and doc["attempts"] == 1 and doc["serial"] == command.serial
    assert doc["frame"] == f"AT+GTOUT=gv50,block,{command.serial}$"
    assert doc["intent"] == {"field": "comandoBloqueo", "value": True}

    harness.ack(IMEI, serial=command.serial, command_type="GTOUT", response="+ACK:GTOUT,...")
    yield harness.settle()

    doc = harness.only_command(IMEI)
    assert doc["status"] == "confirmed"
    assert doc["response"] == "+ACK:GTOUT,..."
    assert doc["confirmedAt"] is not None and "intentOpen" not in doc
    assert [h["status"] for h in doc["history"]] == ["pending", "sent", "confirmed"]
    vehicle = harness.vehicles.find_one({"IMEI": IMEI})
    assert vehicle["bloqueado"] is True and vehicle["comandoBloqueo"] is None
    assert harness.statuses(doc["_id"]) == [("block", "pending"), ("block", "sent"), ("block", "confirmed")]

    yield harness.advance(200.0, step=20.0)
    assert len(device.sent) == 1, "a confirmed command is never sent again"


@pytest_twisted.inlineCallbacks
def test_teltonika_answer_matched_by_command_id_and_unblock_clears_the_intent(harness):
    harness.vehicle(OTHER, bloqueado=True, comandoBloqueo=False)
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(OTHER, protocol="teltonika", listener="teltonika-tcp-0"))
    yield harness.settle()
    assert [c.type for c in device.sent] == ["unblock"]

    harness.ack(OTHER, command_id=device.sent[0].id, response="DOUT1:OFF Timeout:INFINITY", protocol="teltonika")
    yield harness.settle()

    doc = harness.only_command(OTHER)
    assert doc["status"] == "confirmed" and doc["response"] == "DOUT1:OFF Timeout:INFINITY"
    vehicle = harness.vehicles.find_one({"IMEI": OTHER})
    assert vehicle["bloqueado"] is False and vehicle["comandoBloqueo"] is None


@pytest_twisted.inlineCallbacks
def test_offline_device_keeps_the_command_pending_until_it_connects(harness):
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    yield harness.start()
    yield harness.advance(10.0)
    doc = harness.only_command(IMEI)
    assert doc["status"] == "pending" and doc["attempts"] == 0

    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()  # no clock movement: sent on the connection event itself
    assert [c.type for c in device.sent] == ["block"]
    assert harness.only_command(IMEI)["status"] == "sent"


@pytest_twisted.inlineCallbacks
def test_no_acknowledgement_retries_then_fails_and_releases_the_intent(harness):
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    yield harness.start(ack_timeout=10.0, max_attempts=3)
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    failed_before = counter("failed")

    yield harness.advance(60.0)

    assert [c.type for c in device.sent] == ["block", "block", "block"]
    assert len({c.serial for c in device.sent}) == 3, "each attempt has its own serial"
    doc = harness.only_command(IMEI)
    assert doc["status"] == "failed" and doc["attempts"] == 3
    assert "no acknowledgement after 3 attempt(s)" in doc["error"]
    assert [h["status"] for h in doc["history"]] == ["pending", "sent", "pending", "sent", "pending", "sent",
                                                     "failed"]
    vehicle = harness.vehicles.find_one({"IMEI": IMEI})
    assert vehicle["comandoBloqueo"] is None and vehicle["bloqueado"] is False
    assert counter("failed") == failed_before + 1

    yield harness.advance(60.0)
    assert len(device.sent) == 3 and harness.commands.count_documents({}) == 1


@pytest_twisted.inlineCallbacks
def test_late_answer_to_an_earlier_attempt_still_confirms(harness):
    harness.commands.insert_one(new_command(IMEI, "reboot", {}, harness.now(), 24, "test", "test"))
    yield harness.start(ack_timeout=10.0)
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    first = device.sent[0].serial
    yield harness.advance(12.0)
    assert len(device.sent) == 2 and device.sent[1].serial != first

    harness.ack(IMEI, serial=first, command_type="GTRTO")
    yield harness.settle()
    assert harness.only_command(IMEI)["status"] == "confirmed"


@pytest_twisted.inlineCallbacks
def test_negative_answer_fails_with_the_device_text(harness):
    harness.vehicle(OTHER, bloqueado=False, comandoBloqueo=True)
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(OTHER, protocol="teltonika"))
    yield harness.settle()
    harness.ack(OTHER, command_id=device.sent[0].id, success=False, response="nACK", protocol="teltonika")
    yield harness.settle()
    doc = harness.only_command(OTHER)
    assert doc["status"] == "failed" and doc["response"] == "nACK"
    assert doc["error"] == "refused by the device: nACK"
    assert harness.vehicles.find_one({"IMEI": OTHER})["bloqueado"] is False


@pytest_twisted.inlineCallbacks
def test_answer_that_matches_nothing_changes_nothing(harness):
    harness.commands.insert_one(new_command(IMEI, "block", {}, harness.now(), 24, "test", "test"))
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    serial = device.sent[0].serial
    before = counter("ack_unmatched")

    wrong = "0000" if serial != "0000" else "0001"
    harness.ack(IMEI, serial=wrong, command_type="GTOUT")
    harness.ack(IMEI, serial=serial, command_type="GTBSI")  # right serial, other command word
    yield harness.settle()

    assert harness.only_command(IMEI)["status"] == "sent"
    assert counter("ack_unmatched") == before + 2


@pytest_twisted.inlineCallbacks
def test_connection_closed_before_the_answer_sends_again_on_the_next_connection(harness):
    harness.commands.insert_one(new_command(IMEI, "block", {}, harness.now(), 24, "test", "test"))
    yield harness.start()
    first = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.1:40001"))
    yield harness.settle()
    assert len(first.sent) == 1
    harness.sessions.disconnect(first, "idle")
    yield harness.settle()
    doc = harness.only_command(IMEI)
    assert doc["status"] == "pending" and doc["attempts"] == 0 and doc["linkLosses"] == 1
    assert "closed before the device acknowledged (idle)" in doc["history"][-1]["reason"]

    second = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.1:40002"))
    yield harness.settle()
    assert len(second.sent) == 1
    doc = harness.only_command(IMEI)
    assert doc["status"] == "sent" and doc["attempts"] == 1 and doc["peer"] == "10.0.0.1:40002"


@pytest_twisted.inlineCallbacks
def test_new_connection_replacing_a_silent_one_takes_over_its_command(harness):
    harness.commands.insert_one(new_command(IMEI, "unblock", {}, harness.now(), 24, "test", "test"))
    yield harness.start()
    old = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.1:40001"))
    yield harness.settle()
    new = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.9:50000"))  # old one never said goodbye
    yield harness.settle()
    assert len(old.sent) == 1 and len(new.sent) == 1
    doc = harness.only_command(IMEI)
    assert doc["status"] == "sent" and doc["peer"] == "10.0.0.9:50000" and doc["attempts"] == 1 and doc["linkLosses"] == 1


@pytest_twisted.inlineCallbacks
def test_pending_command_expires(harness):
    harness.commands.insert_one(new_command(IMEI, "block", {}, harness.now(), 1, "test", "test"))
    yield harness.start()
    yield harness.advance(3600.0 + 2.0, step=600.0)
    doc = harness.only_command(IMEI)
    assert doc["status"] == "expired"
    assert doc["history"][-1]["reason"].startswith("not delivered before")
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert device.sent == []


@pytest_twisted.inlineCallbacks
def test_speed_guard_holds_a_block_until_the_vehicle_slows_down(harness):
    harness.vehicle(IMEI, bloqueado=False)
    yield harness.start(block_max_speed_kmh=20.0)
    device = harness.sessions.connect(FakeConnection(IMEI))
    harness.position(IMEI, 80.0)
    yield harness.settle()

    harness.vehicle(IMEI, comandoBloqueo=True)
    yield harness.advance(2.0)
    assert device.sent == []
    doc = harness.only_command(IMEI)
    assert doc["status"] == "pending"
    assert doc["waiting"] == "vehicle moving: last known speed 80 km/h is above the 20 km/h block limit"
    assert doc["history"][-1]["reason"].startswith("waiting: vehicle moving")

    harness.position(IMEI, 45.0)
    yield harness.advance(10.0)
    assert device.sent == []
    assert len(harness.only_command(IMEI)["history"]) == 2, "one history entry for the wait, not one per report"

    harness.position(IMEI, 12.0)
    yield harness.settle()  # the report itself releases it
    assert [c.type for c in device.sent] == ["block"]
    doc = harness.only_command(IMEI)
    assert doc["status"] == "sent" and "waiting" not in doc


@pytest_twisted.inlineCallbacks
def test_speed_guard_reads_the_stored_speed_and_can_be_switched_off(harness):
    harness.vehicle(IMEI, bloqueado=False, speed=95.0, dataDevice=harness.now())
    harness.vehicle(OTHER, bloqueado=False, speed=95.0, dataDevice=harness.now())
    harness.commands.insert_one(new_command(IMEI, "block", {}, harness.now(), 24, "test", "test"))
    yield harness.start(block_max_speed_kmh=20.0)
    moving = harness.sessions.connect(FakeConnection(IMEI), speed=None)
    yield harness.settle()
    assert moving.sent == [] and "95 km/h" in harness.only_command(IMEI)["waiting"]

    harness.commands.insert_one(new_command(OTHER, "block", {}, harness.now(), 24, "test", "test"))
    yield harness.start(instance_id="no-guard", sessions=_Only(harness.sessions, OTHER), block_max_speed_kmh=0.0)
    other = harness.sessions.connect(FakeConnection(OTHER), speed=None)
    yield harness.settle()
    assert [c.type for c in other.sent] == ["block"]


class _Only:
    """A registry view holding one device (so that a second service serves only that one)."""

    def __init__(self, sessions, imei):
        self.sessions = sessions
        self.imei = imei

    def get(self, imei):
        return self.sessions.get(imei) if imei == self.imei else None

    def connections(self):
        return [c for c in self.sessions.connections() if c.imei == self.imei]


@pytest_twisted.inlineCallbacks
def test_other_commands_go_out_while_a_block_waits_but_an_unblock_does_not_overtake(harness):
    harness.vehicle(IMEI, bloqueado=False, speed=70.0, dataDevice=harness.now())
    now = harness.now()
    for offset, kind in enumerate(("block", "unblock", "request_position")):
        harness.commands.insert_one(new_command(IMEI, kind, {}, now + timedelta(seconds=offset), 24, "t", "t"))
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI), speed=None)
    yield harness.settle()
    assert [c.type for c in device.sent] == ["request_position"]
    unblock = harness.commands.find_one({"type": "unblock"})
    assert unblock["status"] == "pending" and unblock["waiting"].startswith("waiting behind the earlier block")


@pytest_twisted.inlineCallbacks
def test_one_command_in_flight_per_device_and_the_next_follows_the_answer(harness):
    now = harness.now()
    harness.commands.insert_one(new_command(IMEI, "request_position", {}, now, 24, "t", "t"))
    harness.commands.insert_one(new_command(IMEI, "reboot", {}, now + timedelta(seconds=1), 24, "t", "t"))
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.advance(10.0)
    assert [c.type for c in device.sent] == ["request_position"]
    harness.ack(IMEI, serial=device.sent[0].serial, command_type="GTRTO")
    yield harness.settle()
    assert [c.type for c in device.sent] == ["request_position", "reboot"]


@pytest_twisted.inlineCallbacks
def test_two_instances_on_one_store_send_a_command_exactly_once(harness):
    harness.vehicle(IMEI, bloqueado=False)
    a = yield harness.start(instance_id="instance-a")
    b = yield harness.start(instance_id="instance-b")
    # Both believe they hold the device (a stale registration on one of them).
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    harness.vehicle(IMEI, comandoBloqueo=True)
    yield harness.advance(6.0)

    assert [c.type for c in device.sent] == ["block"]
    doc = harness.only_command(IMEI)
    assert doc["instance"] in (a.instance_id, b.instance_id) and doc["attempts"] == 1


@pytest_twisted.inlineCallbacks
def test_restart_with_a_sent_command_sends_it_again_and_never_after_confirmation(harness):
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    first = yield harness.start(instance_id="gps-1")
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert len(device.sent) == 1
    yield harness.stop(first)
    harness.sessions.current.clear()  # the process is gone, and its connections with it

    yield harness.start(instance_id="gps-1")
    doc = harness.only_command(IMEI)
    assert doc["status"] == "pending" and doc["attempts"] == 0 and doc["linkLosses"] == 1
    assert doc["history"][-1]["reason"].startswith("WayGPS restarted before the device acknowledged")

    device = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.1:40003"))
    yield harness.settle()
    assert len(device.sent) == 1
    harness.ack(IMEI, serial=device.sent[0].serial, command_type="GTOUT")
    yield harness.settle()
    assert harness.only_command(IMEI)["status"] == "confirmed"

    second = harness.services[-1]
    yield harness.stop(second)
    third = yield harness.start(instance_id="gps-1")
    device = harness.sessions.connect(FakeConnection(IMEI, peer="10.0.0.1:40004"))
    yield harness.advance(130.0, step=10.0)
    assert device.sent == [] and harness.only_command(IMEI)["status"] == "confirmed"
    assert third.instance_id == "gps-1"


@pytest_twisted.inlineCallbacks
def test_command_abandoned_by_a_stopped_instance_is_taken_over(harness):
    yield harness.start(instance_id="survivor", ack_timeout=10.0)
    doc = new_command(IMEI, "block", {}, harness.now(), 24, "t", "t")
    doc.update(status="sent", instance="gone", sentAt=harness.now(), attempts=1, serial="0A0A", serials=["0A0A"])
    harness.commands.insert_one(doc)
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.advance(14.0)
    assert device.sent == [], "another instance's command is its own until twice the ack timeout"
    yield harness.advance(10.0)
    assert [c.type for c in device.sent] == ["block"]
    taken = harness.only_command(IMEI)
    assert taken["instance"] == "survivor" and taken["attempts"] == 2


@pytest_twisted.inlineCallbacks
def test_unsupported_command_fails_with_the_reason(harness):
    harness.commands.insert_one(new_command(IMEI, "set_apn", {"apn": "internet"}, harness.now(), 24, "t", "t"))
    yield harness.start()
    harness.sessions.connect(FakeConnection(IMEI, unsupported=("set_apn",)))
    yield harness.settle()
    doc = harness.only_command(IMEI)
    assert doc["status"] == "failed"
    assert doc["error"] == "not written: not supported by the gv50 driver: set_apn is not available on this device"


@pytest_twisted.inlineCallbacks
def test_hand_inserted_commands_are_completed_validated_and_sent(harness):
    harness.commands.insert_one({"IMEI": IMEI, "type": "custom", "params": {"text": "AT+GTRTO=gv50,8,,,,,,0001$"}})
    harness.commands.insert_one({"IMEI": IMEI, "type": "explode", "status": "pending"})
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert [c.params for c in device.sent] == [{"text": "AT+GTRTO=gv50,8,,,,,,0001$"}]
    custom = harness.commands.find_one({"type": "custom"})
    assert custom["status"] == "sent" and custom["expiresAt"] > custom["createdAt"]
    bad = harness.commands.find_one({"type": "explode"})
    assert bad["status"] == "failed" and bad["error"].startswith("invalid command: unknown command type 'explode'")


@pytest_twisted.inlineCallbacks
def test_server_change_intent_and_a_malformed_one(harness):
    harness.vehicle(IMEI, comandoTrocarIP="new.example.com:5004")
    harness.vehicle(OTHER, comandoTrocarIP="not an address")
    yield harness.start()
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert [(c.type, dict(c.params)) for c in device.sent] == [("set_server", {"host": "new.example.com",
                                                                                "port": 5004})]
    harness.ack(IMEI, serial=device.sent[0].serial, command_type="GTSRI")
    yield harness.settle()
    assert harness.only_command(IMEI)["status"] == "confirmed"
    assert harness.vehicles.find_one({"IMEI": IMEI})["comandoTrocarIP"] is None

    bad = harness.only_command(OTHER)
    assert bad["status"] == "failed" and "expected \"host:port\"" in bad["error"]
    assert harness.vehicles.find_one({"IMEI": OTHER})["comandoTrocarIP"] is None


@pytest_twisted.inlineCallbacks
def test_changed_intent_supersedes_the_pending_command(harness):
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    yield harness.start()
    yield harness.advance(2.0)
    block = harness.only_command(IMEI)
    harness.vehicle(IMEI, bloqueado=True, comandoBloqueo=False)  # blocked by SMS meanwhile, now released
    yield harness.advance(2.0)

    block = harness.commands.find_one({"_id": block["_id"]})
    assert block["status"] == "failed" and block["error"] == "superseded: comandoBloqueo is now false"
    unblock = harness.commands.find_one({"type": "unblock"})
    assert unblock["status"] == "pending"
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    assert [c.type for c in device.sent] == ["unblock"]


@pytest_twisted.inlineCallbacks
def test_intent_already_satisfied_is_cleared_and_polling_creates_one_command(harness):
    harness.vehicle(IMEI, bloqueado=True, comandoBloqueo=True)
    harness.vehicle(OTHER, bloqueado=False, comandoBloqueo=True)
    yield harness.start()
    yield harness.advance(20.0)
    assert harness.vehicles.find_one({"IMEI": IMEI})["comandoBloqueo"] is None
    assert harness.commands.count_documents({"IMEI": IMEI}) == 0
    assert harness.commands.count_documents({"IMEI": OTHER}) == 1


@pytest_twisted.inlineCallbacks
def test_status_events_reach_subscribers(harness):
    yield harness.start()
    harness.commands.insert_one({"_id": ObjectId(), **new_command(IMEI, "reboot", {}, harness.now(), 24, "t", "t")})
    device = harness.sessions.connect(FakeConnection(IMEI))
    yield harness.settle()
    harness.ack(IMEI, serial=device.sent[0].serial, command_type="GTRTO")
    yield harness.settle()
    assert harness.statuses() == [("reboot", "sent"), ("reboot", "confirmed")]


@pytest_twisted.inlineCallbacks
def test_intents_are_read_page_by_page(harness, monkeypatch):
    from waygps.commands import service as service_module

    monkeypatch.setattr(service_module, "IMEI_CHUNK", 2)
    imeis = [f"86289402018{n:04d}" for n in range(5)]
    for imei in imeis:
        harness.vehicle(imei, bloqueado=False, comandoBloqueo=True)
    yield harness.start()
    assert sorted(d["IMEI"] for d in harness.commands.find({"type": "block", "status": "pending"})) == imeis


@pytest_twisted.inlineCallbacks
def test_indexes_coexist_with_the_same_keys_under_other_names(harness):
    harness.commands.create_index([("status", 1), ("sentAt", 1)], name="operators_own_name")
    yield harness.start()
    names = harness.commands.index_information()
    assert "operators_own_name" in names and "status_1_sentAt_1" not in names
    unique = names["IMEI_1_intentOpen_1"]
    assert unique["unique"] and unique["partialFilterExpression"] == {"intentOpen": {"$exists": True}}


@pytest_twisted.inlineCallbacks
def test_polls_read_intents_by_index_and_a_periodic_sweep_rejects_malformed_ones(harness):
    from waygps.commands.queue import INTENT_QUERIES
    from waygps.commands.service import SWEEP_INTERVAL

    yield harness.start()
    for query in INTENT_QUERIES:  # each answered from an index the service created, not a collection scan
        plan = harness.vehicles.find(query).explain()["queryPlanner"]["winningPlan"]
        assert "IXSCAN" in str(plan), plan
    yield harness.advance(2.0)  # past the first poll, which sweeps
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    harness.vehicle(OTHER, comandoBloqueo="yes")
    yield harness.advance(2.0)
    assert harness.only_command(IMEI)["type"] == "block"
    assert harness.commands.count_documents({"IMEI": OTHER}) == 0  # not seen by the indexed queries
    yield harness.advance(SWEEP_INTERVAL)
    bad = harness.only_command(OTHER)
    assert bad["status"] == "failed" and "must be true, false or null" in bad["error"]
    assert harness.vehicles.find_one({"IMEI": OTHER})["comandoBloqueo"] is None


@pytest_twisted.inlineCallbacks
def test_what_polls_connections_and_answers_read_is_answered_by_an_index(harness):
    """The embedded store scans a whole collection for a query no single index answers: record
    every read of a busy minute and ask the store how it would answer each."""
    harness.vehicles.create_index("IMEI", unique=True)  # the persistence service's, at startup
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True)
    harness.vehicle(OTHER, bloqueado=False, speed=80.0)
    service = yield harness.start(ack_timeout=10.0)
    yield harness.advance(2.0)  # past the first poll (a sweep, by design)
    reads: list[tuple[str, dict]] = []

    def recording(name: str, real: Any) -> Any:
        def read(query: Any = None, *args: Any, **kwargs: Any) -> Any:
            reads.append((name, dict(query or {})))
            return real(query, *args, **kwargs)
        return read

    for name in ("commands", "vehicles"):
        collection = getattr(service.queue, name)
        for method in ("find", "find_one"):
            setattr(collection, method, recording(name, getattr(collection, method)))
    harness.commands.insert_one({"IMEI": OTHER, "type": "block", "params": {}})  # by hand, no status
    device = harness.sessions.connect(FakeConnection(IMEI))
    other = harness.sessions.connect(FakeConnection(OTHER, peer="10.0.0.2:40002"))
    yield harness.advance(12.0)  # block sent, not answered: overdue, sent again
    harness.position(OTHER, 85.0)
    harness.ack(IMEI, serial=device.sent[-1].serial, command_type="GTOUT")
    harness.sessions.disconnect(other)
    yield harness.advance(4.0)
    assert harness.only_command(IMEI)["status"] == "confirmed" and len(device.sent) == 2
    names = {"commands": "Comando", "vehicles": "Veiculo"}
    scans = []
    for name, query in reads:
        plan = harness.db[names[name]].find(query).explain()["queryPlanner"]["winningPlan"]
        if "COLLSCAN" in str(plan) and set(query) != {"_id"}:
            scans.append((name, query))
    assert len(reads) > 20 and scans == []


@pytest_twisted.inlineCallbacks
def test_intake_refuses_at_once_what_the_device_driver_refuses(harness):
    # A generic device cannot be blocked: the intent is refused with the driver's reason, never queued.
    harness.vehicle(IMEI, bloqueado=False, protocol="generic", comandoBloqueo=True)
    # A hand-inserted command the gv50 driver refuses ('$' inside a custom command).
    harness.vehicle(OTHER, protocol="gv50")
    harness.commands.insert_one({"IMEI": OTHER, "type": "custom", "params": {"text": "AT+GTOUT=gv50,1$,$"}})
    yield harness.start()
    yield harness.advance(4.0)
    doc = harness.only_command(IMEI)
    assert doc["status"] == "failed" and doc["type"] == "block"
    assert doc["error"] == "refused by the generic driver: generic devices take only custom commands, not block"
    assert harness.vehicles.find_one({"IMEI": IMEI})["comandoBloqueo"] is None
    other = harness.only_command(OTHER)
    assert other["status"] == "failed" and other["error"].startswith("refused by the gv50 driver: custom: expected")
    assert other["attempts"] == 0 and other.get("sentAt") is None


@pytest_twisted.inlineCallbacks
def test_an_applications_pending_insert_is_refused_at_once_too(harness):
    # What a dashboard writes (contract: status "pending"): checked with the driver before any device
    # connects, not only when the command is claimed.
    harness.vehicle(OTHER, protocol="gv50")
    harness.commands.insert_one({"IMEI": OTHER, "type": "set_apn", "status": "pending",
                                 "params": {"apn": "internet$", "user": "", "password": ""}})
    harness.vehicle(IMEI, protocol="gv50")
    harness.commands.insert_one({"IMEI": IMEI, "type": "reboot", "status": "pending"})
    yield harness.start()
    yield harness.advance(4.0)
    refused = harness.only_command(OTHER)
    assert refused["status"] == "failed" and refused["error"].startswith("refused by the gv50 driver")
    assert refused["attempts"] == 0 and refused.get("sentAt") is None
    accepted = harness.only_command(IMEI)
    assert accepted["status"] == "pending" and accepted["expiresAt"] is not None


@pytest_twisted.inlineCallbacks
def test_a_stale_speed_counts_as_unknown_and_a_fresh_report_releases_the_block(harness):
    harness.vehicle(IMEI, bloqueado=False)
    yield harness.start(block_max_speed_kmh=20.0, block_speed_max_age=600.0)
    device = harness.sessions.connect(FakeConnection(IMEI), speed=5.0)
    yield harness.advance(700.0, step=100.0)  # the 5 km/h report is now 700 s old
    harness.vehicle(IMEI, comandoBloqueo=True)
    yield harness.advance(4.0)
    assert device.sent == []
    doc = harness.only_command(IMEI)
    assert doc["waitingFor"] == "speed"
    assert doc["waiting"].startswith("vehicle movement unknown: last speed 5 km/h is 70")
    assert "older than 600 s" in doc["waiting"]
    harness.position(IMEI, 0.0)
    yield harness.settle()
    assert [c.type for c in device.sent] == ["block"]
