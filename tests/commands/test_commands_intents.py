"""Veiculo intents -> planned operations, and the Comando document checks (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from waygps.commands import intents
from waygps.commands.record import InvalidCommand, frame_text, new_command, normalize, parse_server

IMEI = "862894020180553"
NOW = datetime(2026, 9, 21, 12, 0, tzinfo=timezone.utc)


def open_cmd(kind: str, status: str = "pending", intent: str | None = None, **params):
    doc = new_command(IMEI, kind, params or None, NOW, 24, "t", "t")
    doc.update(_id=f"{kind}-{status}", status=status)
    if intent:
        doc["intentOpen"] = intent
        doc["intent"] = {"field": intent, "value": kind == "block"}
    return doc


def summary(ops):
    out = []
    for op in ops:
        if isinstance(op, intents.Create):
            out.append(("create", op.type, dict(op.params)))
        elif isinstance(op, intents.Supersede):
            out.append(("supersede", op.doc["_id"]))
        elif isinstance(op, intents.Clear):
            out.append(("clear", op.field, op.value))
        elif isinstance(op, intents.Reject):
            out.append(("reject", op.field))
    return out


def test_block_intent_differing_from_state_creates_a_block():
    assert summary(intents.plan({"IMEI": IMEI, "comandoBloqueo": True, "bloqueado": False}, [])) == [
        ("create", "block", {})]
    assert summary(intents.plan({"IMEI": IMEI, "comandoBloqueo": False}, [])) == [("create", "unblock", {})]


def test_no_intent_or_already_satisfied():
    assert intents.plan({"IMEI": IMEI, "comandoBloqueo": None, "bloqueado": False}, []) == []
    assert intents.plan({"IMEI": IMEI}, []) == []
    assert summary(intents.plan({"IMEI": IMEI, "comandoBloqueo": True, "bloqueado": True}, [])) == [
        ("clear", "comandoBloqueo", True)]


def test_open_command_carries_the_intent_already():
    vehicle = {"IMEI": IMEI, "comandoBloqueo": True, "bloqueado": False}
    assert intents.plan(vehicle, [open_cmd("block", "sent", "comandoBloqueo")]) == []
    assert intents.plan(vehicle, [open_cmd("block", "pending")]) == [], "an operator's block counts too"


def test_changed_intent_supersedes_pending_and_waits_for_sent():
    vehicle = {"IMEI": IMEI, "comandoBloqueo": False, "bloqueado": False}
    assert summary(intents.plan(vehicle, [open_cmd("block", "pending", "comandoBloqueo")])) == [
        ("supersede", "block-pending"), ("create", "unblock", {})]
    assert intents.plan(vehicle, [open_cmd("block", "sent", "comandoBloqueo")]) == []


def test_operators_contrary_command_does_not_stop_the_intent():
    vehicle = {"IMEI": IMEI, "comandoBloqueo": True, "bloqueado": True}
    assert summary(intents.plan(vehicle, [open_cmd("unblock", "pending")])) == [("create", "block", {})]


def test_malformed_intents_are_rejected():
    assert summary(intents.plan({"IMEI": IMEI, "comandoBloqueo": "yes"}, [])) == [("reject", "comandoBloqueo")]
    assert summary(intents.plan({"IMEI": IMEI, "comandoTrocarIP": "nowhere"}, [])) == [("reject", "comandoTrocarIP")]
    assert summary(intents.plan({"IMEI": IMEI, "comandoTrocarIP": 5004}, [])) == [("reject", "comandoTrocarIP")]


def test_server_intent():
    vehicle = {"IMEI": IMEI, "comandoTrocarIP": "new.example.com:5004"}
    assert summary(intents.plan(vehicle, [])) == [("create", "set_server", {"host": "new.example.com", "port": 5004})]
    same = open_cmd("set_server", "sent", host="new.example.com", port=5004)
    assert intents.plan(vehicle, [same]) == []
    older = open_cmd("set_server", "pending", "comandoTrocarIP", host="old.example.com", port=1)
    assert summary(intents.plan(vehicle, [older])) == [
        ("supersede", "set_server-pending"), ("create", "set_server", {"host": "new.example.com", "port": 5004})]


def test_command_for_an_intent_is_marked_open():
    op = intents.Create("comandoBloqueo", True, "block", {}, "queued from Veiculo.comandoBloqueo=true")
    doc = intents.command_for(IMEI, op, NOW, 24)
    assert doc["intentOpen"] == "comandoBloqueo" and doc["intent"] == {"field": "comandoBloqueo", "value": True}
    assert doc["status"] == "pending" and doc["history"][0]["reason"] == "queued from Veiculo.comandoBloqueo=true"


@pytest.mark.parametrize("kind, params, expected", [
    ("block", None, {}),
    ("set_server", {"host": "10.1.2.3", "port": "5004"}, {"host": "10.1.2.3", "port": 5004}),
    ("set_apn", {"apn": "internet.op"}, {"apn": "internet.op", "user": "", "password": ""}),
    ("custom", {"text": "setdigout 1"}, {"text": "setdigout 1"}),
    ("block", {"device_password": "gv50x", "note": "dropped"}, {"device_password": "gv50x"}),
])
def test_normalize_accepts(kind, params, expected):
    assert normalize(kind, params) == expected


@pytest.mark.parametrize("kind, params, message", [
    ("launch", {}, "unknown command type 'launch'"),
    ("set_server", {"host": "a b", "port": 1}, "params.host is not a host name or address: 'a b'"),
    ("set_server", {"host": "h", "port": True}, "params.port must be a port number 1-65535, got True"),
    ("set_apn", {}, "params.apn is required"),
    ("custom", {"text": "a\nb"}, "params.text contains control characters"),
    ("block", ["x"], "params must be an object"),
    ("block", {"device_password": "a,b"}, "params.device_password must be 1-16 letters or digits"),
])
def test_normalize_rejects(kind, params, message):
    with pytest.raises(InvalidCommand) as e:
        normalize(kind, params)
    assert str(e.value).startswith(message)


def test_parse_server_and_frame_text():
    assert parse_server("[::1]:5004") == {"host": "::1", "port": 5004}
    with pytest.raises(InvalidCommand):
        parse_server("host:")
    assert frame_text(b"AT+GTOUT=gv50,1$") == "AT+GTOUT=gv50,1$"
    assert frame_text(b"\x00\x00\x0c") == "00000c"
