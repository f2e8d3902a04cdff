"""``waygps command`` against the real embedded store."""

from __future__ import annotations

import argparse
import json
import socket

import pymongo
import pytest

from waygps.cli import command as cli
from waygps.config import build

IMEI = "862894020180553"


@pytest.fixture
def config(mongo_uri, mongo_db_name):
    return build({"mongodb": {"uri": mongo_uri, "database": mongo_db_name, "connect_timeout": 5}})


@pytest.fixture
def db(mongo_uri, mongo_db_name):
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    database = client[mongo_db_name]
    database["Veiculo"].insert_one({"IMEI": IMEI, "bloqueado": False})
    yield database
    client.close()


def run(config, *argv):
    parser = argparse.ArgumentParser(prog="waygps command")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv), config)


def test_send_queues_a_pending_command(config, db, capsys):
    assert run(config, "send", IMEI, "set-server", "tracking.example.com:5004") == 0
    out = capsys.readouterr().out
    doc = db["Comando"].find_one({"IMEI": IMEI})
    assert doc["type"] == "set_server" and doc["params"] == {"host": "tracking.example.com", "port": 5004}
    assert doc["status"] == "pending" and doc["source"] == "cli" and doc["attempts"] == 0
    assert out.startswith(f"queued set_server tracking.example.com:5004 for {IMEI}: command {doc['_id']} (pending")


@pytest.mark.parametrize("argv, kind, params", [
    (["block"], "block", {}),
    (["request-position"], "request_position", {}),
    (["set-apn", "internet.op"], "set_apn", {"apn": "internet.op", "user": "", "password": ""}),
    (["set-apn", "internet.op", "u", "p"], "set_apn", {"apn": "internet.op", "user": "u", "password": "p"}),
    (["custom", "setdigout", "1?"], "custom", {"text": "setdigout 1?"}),
])
def test_parse_command(argv, kind, params):
    assert cli.parse_command(argv[0], argv[1:]) == (kind, params)


def test_unknown_imei_is_a_usage_error(config, db, capsys):
    assert run(config, "send", "000000000000000", "block") == 2
    assert "unknown IMEI 000000000000000: no such device in Veiculo" in capsys.readouterr().err
    assert db["Comando"].count_documents({}) == 0


@pytest.mark.parametrize("argv, message", [
    (["set-server", "nowhere"], "set-server: expected \"host:port\", got 'nowhere'"),
    (["set-apn", "a", "b"], "usage: waygps command send IMEI set-apn APN [USER PASSWORD]"),
    (["block", "now"], "usage: waygps command send IMEI block"),
    (["custom"], "usage: waygps command send IMEI custom TEXT"),
])
def test_malformed_arguments_exit_2_even_without_a_store(argv, message, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    unreachable = build({"mongodb": {"uri": f"mongodb://127.0.0.1:{dead}/", "connect_timeout": 0.3}})
    assert run(unreachable, "send", IMEI, *argv) == 2
    assert message in capsys.readouterr().err


def test_unreachable_store_exits_1(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    unreachable = build({"mongodb": {"uri": f"mongodb://127.0.0.1:{dead}/", "connect_timeout": 0.3}})
    assert run(unreachable, "list") == 1
    assert f"cannot reach MongoDB at mongodb://127.0.0.1:{dead}/" in capsys.readouterr().err


def test_list_show_and_cancel(config, db, capsys):
    run(config, "send", IMEI, "block")
    run(config, "send", IMEI, "reboot")
    capsys.readouterr()

    assert run(config, "list", IMEI) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "IMEI", "COMMAND", "STATUS", "TRIES", "CREATED", "(UTC)", "LAST", "CHANGE"]
    assert [line.split()[2] for line in lines[1:]] == ["reboot", "block"]

    block = db["Comando"].find_one({"type": "block"})
    assert run(config, "cancel", str(block["_id"]), "--reason", "wrong car") == 0
    assert "cancelled command" in capsys.readouterr().out
    block = db["Comando"].find_one({"_id": block["_id"]})
    assert block["status"] == "failed" and block["error"] == "cancelled by waygps command: wrong car"
    assert run(config, "cancel", str(block["_id"])) == 1
    assert "only a pending command can be cancelled" in capsys.readouterr().err

    assert run(config, "list", "--status", "pending", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in rows] == ["reboot"] and rows[0]["createdAt"].endswith("Z")

    assert run(config, "show", str(block["_id"])) == 0
    out = capsys.readouterr().out
    assert "status    failed" in out and "cancelled by waygps command: wrong car" in out
    assert run(config, "show", "nope") == 2


def test_cancel_releases_the_intent(config, db, capsys):
    db["Veiculo"].update_one({"IMEI": IMEI}, {"$set": {"comandoBloqueo": True}})
    db["Comando"].insert_one({"IMEI": IMEI, "type": "block", "params": {}, "status": "pending",
                              "intent": {"field": "comandoBloqueo", "value": True}, "intentOpen": "comandoBloqueo"})
    doc = db["Comando"].find_one({})
    assert run(config, "cancel", str(doc["_id"])) == 0
    assert db["Veiculo"].find_one({"IMEI": IMEI})["comandoBloqueo"] is None
    assert "intentOpen" not in db["Comando"].find_one({})


def test_wait_reports_a_command_nobody_delivers(config, db, capsys):
    assert run(config, "send", IMEI, "reboot", "--wait", "0.6") == 1
    assert "still pending after 0.6 s" in capsys.readouterr().out


def test_list_empty(config, db, capsys):
    assert run(config, "list", IMEI, "--status", "sent") == 0
    assert capsys.readouterr().out.strip() == f"no commands for {IMEI} with status sent"


def test_device_password(config, db, capsys):
    assert run(config, "send", IMEI, "block", "--device-password", "abc123") == 0
    assert db["Comando"].find_one({})["params"] == {"device_password": "abc123"}
    assert run(config, "send", IMEI, "block", "--device-password", "a b") == 2
    assert "device_password must be 1-16 letters or digits" in capsys.readouterr().err


@pytest.mark.parametrize("protocol, argv, reason", [
    ("gv50", ["custom", "AT+GTOUT=gv50,1$,,,0,0,0,0,0,0,0,,,,,,,$"],
     "refused by the gv50 driver: custom: expected exactly one command"),
    ("gv50", ["set-apn", "inter$net"], "refused by the gv50 driver: set_apn: apn 'inter$net' must be at most 60"),
    ("teltonika", ["set-apn", "a;b"], "refused by the teltonika driver: apn 'a;b': only printable ASCII"),
    ("generic", ["block"], "refused by the generic driver: generic devices take only custom commands, not block"),
])
def test_send_refuses_what_the_device_driver_would_refuse(config, db, capsys, protocol, argv, reason):
    db["Veiculo"].update_one({"IMEI": IMEI}, {"$set": {"protocol": protocol}})
    assert run(config, "send", IMEI, *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("waygps command: not queued: ") and reason in err
    assert db["Comando"].count_documents({}) == 0


def test_send_with_an_unknown_driver_queues_for_the_claim_to_decide(config, db, capsys):
    db["Veiculo"].update_one({"IMEI": IMEI}, {"$set": {"protocol": "some-plugin-not-installed"}})
    assert run(config, "send", IMEI, "custom", "AT+GTOUT=gv50,1$,,,$") == 0
    db["Veiculo"].update_one({"IMEI": IMEI}, {"$unset": {"protocol": ""}})
    assert run(config, "send", IMEI, "custom", "anything at all") == 0
    assert db["Comando"].count_documents({"status": "pending"}) == 2


def test_send_accepts_what_the_driver_accepts_and_force_is_recorded(config, db, capsys):
    db["Veiculo"].update_one({"IMEI": IMEI}, {"$set": {"protocol": "gv50"}})
    assert run(config, "send", IMEI, "custom", "AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,$", "--force") == 0
    captured = capsys.readouterr()
    assert "warning: --force" in captured.err
    doc = db["Comando"].find_one({"IMEI": IMEI})
    assert doc["force"] is True and doc["status"] == "pending"
    assert "with --force" in doc["history"][0]["reason"]
    assert run(config, "send", IMEI, "block") == 0
    assert "force" not in db["Comando"].find_one({"type": "block"})
