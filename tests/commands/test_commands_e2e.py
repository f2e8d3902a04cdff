"""End to end: the real server on free ports, fake GV50 and Teltonika devices on real sockets.

An operator writes ``Veiculo.comandoBloqueo``; the device receives the frame
its protocol document gives, answers, and ``bloqueado`` / ``Comando.status``
end up right. Frames: gv50-protocol.md §5.2 / §3.12 and S1 (§7.1);
teltonika-protocol.md §2 (IMEI handshake), TV-09 / TV-10 and the §5.3 response.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, Callable

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

GV50_IMEI = "862894020180553"
TELTONIKA_IMEI = "352093081452251"
FAST = {"poll_interval": 0.2, "ack_timeout": 2.0, "max_attempts": 2}
WAIT_LIMIT = 15.0  # seconds before a wait gives up (a failure, not a measurement)

TELTONIKA_HELLO = bytes.fromhex("000F333532303933303831343532323531")
SETDIGOUT_1 = bytes.fromhex("00000000000000130C01050000000B7365746469676F7574203101000087A2")  # TV-09
DOUT1_ON = bytes.fromhex("00000000000000210C010600000019444F5554313A4F4E2054696D656F75743A494E46494E49545901"
                         "000002CD")  # §5.3


def gtfri(speed: float, count: int, imei: str = GV50_IMEI) -> bytes:
    """Sample S1 with another speed and count (a new report each time), fixed now: the speed guard
    takes a speed only while it is recent."""
    fix = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return (f"+RESP:GTFRI,060228,{imei},,,10,1,1,{speed:.1f},147,329.7,-62.899703,-17.720434,{fix},"
            f"0736,0003,6AAE,3381,00,913.3,,,,0,220101,,,,20160309{73554 + count:06d},{count:04X}$").encode()


def teltonika_report(speed: int) -> bytes:
    """A Codec 8 packet of one record fixed now at ``speed`` km/h (the speed guard wants a recent speed)."""
    from waygps.drivers.teltonika.avl import encode_data, make_record
    from waygps.drivers.teltonika.framing import frame

    now_ms = int(time.time() * 1000)
    record = make_record(now_ms, longitude=-628997030, latitude=-177204340, satellites=9, speed=speed)
    return frame(encode_data(0x08, [record]))


def gv50_ack(serial: str, count: int, word: str = "GTOUT", imei: str = GV50_IMEI) -> bytes:
    return f"+ACK:{word},060228,{imei},,{serial},20160309073554,{count:04X}$".encode()


class Device(Protocol):
    """A fake device: keeps everything the server wrote."""

    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


@inlineCallbacks
def connect(port: int) -> Any:
    device = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), device)
    return device


@inlineCallbacks
def until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something true; fail after WAIT_LIMIT seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        yield deferLater(reactor, 0.05, lambda: None)


def gv50_command(device: Device, word: str = "GTOUT") -> Callable[[], Any]:
    return lambda: re.findall(rf"AT\+{word}=gv50,([01]),,,0,0,0,0,0,0,0,,,,,,,([0-9A-F]{{4}})\$".encode(),
                              device.received)


@pytest_twisted.inlineCallbacks
def test_gv50_block_from_intent_to_confirmation(start_server):
    server = yield start_server(listeners=[{"driver": "gv50"}], commands=FAST)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False, "comandoBloqueo": None})
    device = yield connect(server.port(0))
    device.transport.write(gtfri(5.0, 1))
    yield until(lambda: b"+SACK:0001$" in device.received, "the report's SACK")

    db["Veiculo"].update_one({"IMEI": GV50_IMEI}, {"$set": {"comandoBloqueo": True}})
    [(level, serial)] = yield until(gv50_command(device), "AT+GTOUT")
    assert level == b"1"
    doc = db["Comando"].find_one({"IMEI": GV50_IMEI})
    assert doc["status"] == "sent" and doc["serial"] == serial.decode()

    device.transport.write(gv50_ack(serial.decode(), 2))
    yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "confirmed"}), "confirmed")
    vehicle = db["Veiculo"].find_one({"IMEI": GV50_IMEI})
    assert vehicle["bloqueado"] is True and vehicle["comandoBloqueo"] is None
    assert b"+SACK:0002$" in device.received


@pytest_twisted.inlineCallbacks
def test_teltonika_block_from_intent_to_confirmation(start_server):
    server = yield start_server(listeners=[{"driver": "teltonika"}], commands=FAST)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": TELTONIKA_IMEI, "bloqueado": False, "comandoBloqueo": True})
    device = yield connect(server.port(0))
    device.transport.write(TELTONIKA_HELLO)
    yield until(lambda: device.received.startswith(b"\x01"), "the handshake answer")
    device.transport.write(teltonika_report(0))
    yield until(lambda: SETDIGOUT_1 in device.received, "setdigout 1")

    device.transport.write(DOUT1_ON)
    doc = yield until(lambda: db["Comando"].find_one({"IMEI": TELTONIKA_IMEI, "status": "confirmed"}), "confirmed")
    assert doc["response"] == "DOUT1:ON Timeout:INFINITY"
    vehicle = db["Veiculo"].find_one({"IMEI": TELTONIKA_IMEI})
    assert vehicle["bloqueado"] is True and vehicle["comandoBloqueo"] is None


@pytest_twisted.inlineCallbacks
def test_device_offline_when_the_intent_is_written_gets_it_on_connecting(start_server):
    server = yield start_server(listeners=[{"driver": "gv50"}], commands=FAST)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": True, "comandoBloqueo": False})
    yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "pending", "type": "unblock"}),
                "the queued unblock")
    device = yield connect(server.port(0))
    device.transport.write(gtfri(0.0, 1))
    [(level, serial)] = yield until(gv50_command(device), "AT+GTOUT")
    assert level == b"0"
    device.transport.write(gv50_ack(serial.decode(), 2))
    yield until(lambda: db["Veiculo"].find_one({"IMEI": GV50_IMEI, "bloqueado": False, "comandoBloqueo": None}),
                "unblocked")


@pytest_twisted.inlineCallbacks
def test_no_acknowledgement_retries_then_fails(start_server):
    server = yield start_server(listeners=[{"driver": "gv50"}], commands=FAST)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False, "comandoBloqueo": True})
    device = yield connect(server.port(0))
    device.transport.write(gtfri(0.0, 1))
    doc = yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "failed"}), "failed")
    sent = gv50_command(device)()
    assert len(sent) == 2 and sent[0][1] != sent[1][1]
    assert doc["attempts"] == 2 and "no acknowledgement after 2 attempt(s)" in doc["error"]
    assert db["Veiculo"].find_one({"IMEI": GV50_IMEI})["bloqueado"] is False


@pytest_twisted.inlineCallbacks
def test_speed_guard_over_the_wire(start_server):
    server = yield start_server(listeners=[{"driver": "gv50"}], commands={**FAST, "block_max_speed_kmh": 20.0})
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False})
    device = yield connect(server.port(0))
    device.transport.write(gtfri(87.0, 1))
    yield until(lambda: b"+SACK:0001$" in device.received, "the report's SACK")
    db["Veiculo"].update_one({"IMEI": GV50_IMEI}, {"$set": {"comandoBloqueo": True}})
    doc = yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "waiting": {"$exists": True}}), "waiting")
    assert doc["status"] == "pending" and "87 km/h" in doc["waiting"]
    assert gv50_command(device)() == []

    device.transport.write(gtfri(8.0, 2))
    [(level, serial)] = yield until(gv50_command(device), "AT+GTOUT once slow")
    device.transport.write(gv50_ack(serial.decode(), 3))
    yield until(lambda: db["Veiculo"].find_one({"IMEI": GV50_IMEI, "bloqueado": True}), "blocked")


@pytest_twisted.inlineCallbacks
def test_two_instances_on_one_store_send_exactly_once(start_server):
    first = yield start_server(listeners=[{"driver": "gv50"}], commands={**FAST, "instance_id": "gps-a"})
    second = yield start_server(listeners=[{"driver": "gv50"}], commands={**FAST, "instance_id": "gps-b"})
    db = first.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False})
    # The same device on both instances (an old connection one of them still believes in).
    devices = []
    for server in (first, second):
        device = yield connect(server.port(0))
        device.transport.write(gtfri(0.0, 1 + len(devices)))
        devices.append(device)
    for count, device in enumerate(devices, 1):
        yield until(lambda count=count, device=device: f"+SACK:{count:04X}$".encode() in device.received, "SACK")

    db["Veiculo"].update_one({"IMEI": GV50_IMEI}, {"$set": {"comandoBloqueo": True}})
    yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "sent"}), "sent")
    for _ in range(10):  # several polls of both instances
        yield deferLater(reactor, FAST["poll_interval"], lambda: None)
    writes = [len(gv50_command(device)()) for device in devices]
    assert sorted(writes) == [0, 1]
    doc = db["Comando"].find_one({"IMEI": GV50_IMEI})
    assert doc["attempts"] == 1 and doc["instance"] == ("gps-a" if writes[0] else "gps-b")


@pytest_twisted.inlineCallbacks
def test_restart_neither_loses_a_sent_command_nor_repeats_a_confirmed_one(start_server):
    settings = {"listeners": [{"driver": "gv50"}], "commands": {**FAST, "ack_timeout": 30.0,
                                                                 "instance_id": "gps-1"}}
    server = yield start_server(**settings)
    db = server.sync_db()
    db["Veiculo"].insert_one({"IMEI": GV50_IMEI, "bloqueado": False, "comandoBloqueo": True})
    device = yield connect(server.port(0))
    device.transport.write(gtfri(0.0, 1))
    yield until(gv50_command(device), "AT+GTOUT before the restart")
    yield server.stop()  # no answer yet
    yield until(lambda: device.lost, "the connection closed by the shutdown")

    server = yield start_server(**settings)
    doc = db["Comando"].find_one({"IMEI": GV50_IMEI})
    assert doc["status"] == "pending" and doc["attempts"] == 0 and doc["linkLosses"] == 1
    device = yield connect(server.port(0))
    device.transport.write(gtfri(0.0, 2))
    [(_, serial)] = yield until(gv50_command(device), "AT+GTOUT after the restart")
    device.transport.write(gv50_ack(serial.decode(), 3))
    yield until(lambda: db["Comando"].find_one({"IMEI": GV50_IMEI, "status": "confirmed"}), "confirmed")
    yield server.stop()

    server = yield start_server(**settings)
    device = yield connect(server.port(0))
    device.transport.write(gtfri(0.0, 4))
    yield until(lambda: b"+SACK:0004$" in device.received, "SACK")
    for _ in range(10):
        yield deferLater(reactor, FAST["poll_interval"], lambda: None)
    assert gv50_command(device)() == []
    doc = db["Comando"].find_one({"IMEI": GV50_IMEI})
    assert doc["status"] == "confirmed" and doc["attempts"] == 1 and doc["linkLosses"] == 1
    assert db["Veiculo"].find_one({"IMEI": GV50_IMEI})["bloqueado"] is True
