"""The speed guard over the wire: every command that cuts the engine waits while the vehicle moves.

Real server, real sockets, fake GV50 and Teltonika devices; commands queued the
ways operators queue them (``waygps command send``, a ``Comando`` document).
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timezone

import pytest_twisted
from test_commands_e2e import FAST, GV50_IMEI, TELTONIKA_HELLO, TELTONIKA_IMEI, connect, gtfri, gv50_ack, \
    teltonika_report, until
from twisted.internet import reactor
from twisted.internet.task import deferLater

from waygps.cli import command as cli
from waygps.commands.record import new_command
from waygps.config import build

GUARD = {**FAST, "block_max_speed_kmh": 20.0}
GTOUT_ON = "AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,$"


def send(mongo_uri, mongo_db_name, *argv):
    parser = argparse.ArgumentParser(prog="waygps command")
    cli.add_arguments(parser)
    config = build({"mongodb": {"uri": mongo_uri, "database": mongo_db_name, "connect_timeout": 5}})
    return cli.run(parser.parse_args(argv), config)


def polls(n=6):
    return deferLater(reactor, FAST["poll_interval"] * n, lambda: None)


@pytest_twisted.inlineCallbacks
def test_custom_gtout_from_the_cli_waits_while_moving_even_when_forced(start_server, mongo_uri, mongo_db_name):
    server = yield start_server(listeners=[{"driver": "gv50"}], commands=GUARD)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False})
    device = yield connect(server.port(0))
    device.transport.write(gtfri(95.0, 1))
    yield until(lambda: b"+SACK:0001$" in device.received, "the report's SACK")
    yield until(lambda: db["Veiculo"].find_one({"IMEI": GV50_IMEI, "protocol": "gv50"}), "Veiculo.protocol")

    assert send(mongo_uri, mongo_db_name, "send", GV50_IMEI, "custom", GTOUT_ON, "--force") == 0
    doc = yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "waiting": {"$exists": True}}), "waiting")
    assert doc["status"] == "pending" and doc["waitingFor"] == "speed"
    assert doc["waiting"] == "vehicle moving: last known speed 95 km/h is above the 20 km/h block limit"
    yield polls()
    assert b"AT+GTOUT" not in device.received, "--force never overrides a vehicle known to move"

    device.transport.write(gtfri(3.0, 2))
    sent = yield until(lambda: re.findall(rb"AT\+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,([0-9A-F]{4})\$",
                                          device.received), "AT+GTOUT once stopped")
    device.transport.write(gv50_ack(sent[0].decode(), 3))
    yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "confirmed"}), "confirmed")


@pytest_twisted.inlineCallbacks
def test_teltonika_setdigout_waits_while_moving(start_server):
    server = yield start_server(listeners=[{"driver": "teltonika"}], commands=GUARD)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": TELTONIKA_IMEI, "bloqueado": False})
    device = yield connect(server.port(0))
    device.transport.write(TELTONIKA_HELLO)
    yield until(lambda: device.received.startswith(b"\x01"), "the handshake answer")
    device.transport.write(teltonika_report(95))
    yield until(lambda: device.received.endswith(b"\x00\x00\x00\x01"), "the report's acknowledgement")
    now = datetime.now(timezone.utc)
    db["Comando"].insert_one(new_command(TELTONIKA_IMEI, "custom", {"text": "setdigout ?1"}, now, 1, "test", "t"))
    doc = yield until(lambda: db["Comando"].find_one({"waiting": {"$exists": True}}), "waiting")
    assert doc["waiting"].startswith("vehicle moving: last known speed 95 km/h")
    yield polls()
    assert b"setdigout" not in device.received

    device.transport.write(teltonika_report(0))
    yield until(lambda: b"setdigout ?1" in device.received, "setdigout once stopped")


@pytest_twisted.inlineCallbacks
def test_unknown_movement_waits_and_an_explicit_override_goes_out_logged(start_server):
    server = yield start_server(listeners=[{"driver": "teltonika"}], commands=GUARD)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": TELTONIKA_IMEI, "bloqueado": False, "comandoBloqueo": True})
    device = yield connect(server.port(0))
    device.transport.write(TELTONIKA_HELLO)  # identified, but no position: its movement is unknown
    yield until(lambda: device.received.startswith(b"\x01"), "the handshake answer")
    doc = yield until(lambda: db["Comando"].find_one({"type": "block", "waiting": {"$exists": True}}), "waiting")
    assert doc["waiting"].startswith("vehicle movement unknown: no speed reported")
    yield polls()
    assert b"setdigout" not in device.received
    # The operator overrides: cancels the block, queues a forced one.
    db["Veiculo"].update_one({"IMEI": TELTONIKA_IMEI}, {"$set": {"comandoBloqueo": None}})
    db["Comando"].delete_many({})
    now = datetime.now(timezone.utc)
    db["Comando"].insert_one(new_command(TELTONIKA_IMEI, "block", {}, now, 1, "test", "t", force=True))
    yield until(lambda: b"setdigout 1" in device.received, "the forced block")
    doc = db["Comando"].find_one({"type": "block"})
    assert "speed guard overridden by the operator (force): vehicle movement unknown" in doc["history"][-1]["reason"]
