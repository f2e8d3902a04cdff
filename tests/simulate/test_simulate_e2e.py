"""The simulator against a running WayGPS on the embedded store, over real sockets.

Reports arrive and are stored (every driver, TCP and UDP); after a store
outage the re-sent reports are stored exactly once; a block command reaches a
simulated device and is confirmed; ``waygps simulate`` in a subprocess stops
on SIGINT and prints its summary.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.conftest import StoreProcess, server_config
from waygps.simulate.device import DeviceSettings
from waygps.simulate.fleet import Fleet, FleetOptions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT_LIMIT = 60.0  # seconds before a wait gives up (a failure, not a measurement)


def options(driver: str, port: int, udp: bool = False, **values: Any) -> FleetOptions:
    settings = DeviceSettings(ack_timeout=values.pop("ack_timeout", 5.0), heartbeat=values.pop("heartbeat", 0.0),
                              udp=udp)
    base: dict[str, Any] = dict(driver=driver, host="127.0.0.1", port=port, devices=5, interval=0.2,
                                ramp_up=0.5, settings=settings, udp=udp, reconnect_delay=0.5, drain=90.0)
    base.update(values)
    return FleetOptions(**base)


@inlineCallbacks
def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        yield deferLater(reactor, 0.1, lambda: None)


@pytest.mark.parametrize("driver,transport", [("gv50", "tcp"), ("gv50", "udp"), ("teltonika", "tcp"),
                                              ("teltonika", "udp"), ("generic", "tcp"), ("generic", "udp")])
@pytest_twisted.inlineCallbacks
def test_reports_arrive_and_are_stored(start_server, driver: str, transport: str) -> None:
    server = yield start_server(listeners=[{"driver": driver, "transport": transport}])
    fleet = Fleet(reactor, options(driver, server.port(0), udp=transport == "udp", reports=4))
    stats = yield fleet.start()
    assert stats.sent == stats.acked == 20 and stats.summary(time.time())["unacknowledged"] == 0
    db = server.sync_db()
    imeis = sorted(link.model.imei for link in fleet.links)
    stored = list(db["DadosVeiculo"].find({}, {"IMEI": 1, "location": 1}))
    assert len(stored) == 20
    assert sorted({d["IMEI"] for d in stored}) == imeis
    assert all(d["location"]["type"] == "Point" for d in stored)  # kept although the history has no geo index
    yield until(lambda: db["Veiculo"].count_documents({"location.type": "Point"}) == 5, "five vehicles with a place")
    near = {"location": {"$geoWithin": {"$centerSphere": [[-63.1821, -17.7833], 30 / 6371]}}}
    assert db["Veiculo"].count_documents(near) == 5  # answered with the Veiculo 2dsphere index


@pytest.fixture
def killable() -> Any:
    store = StoreProcess(start=False, prefix="waygps-sim-outage-")
    store.start()
    store.wait()
    yield store
    store.close()


@pytest_twisted.inlineCallbacks
def test_reports_resent_after_a_store_outage_are_stored_once(killable: StoreProcess) -> None:
    from waygps.drivers import find_drivers
    from waygps.service import WayGPSService

    config = server_config(killable.uri, "sim_outage", [{"driver": "gv50"}],
                           persistence={"store_timeout": 1.0, "reconnect_max_delay": 0.5, "batch_interval_ms": 5.0})
    service = WayGPSService(config, find_drivers(), reactor)
    service.startService()
    yield service.started
    try:
        fleet = Fleet(reactor, options("gv50", service.listeners[0].bound_port, reports=30, ack_timeout=2.0,
                                       interval=0.2))
        done = fleet.start()
        yield until(lambda: fleet.stats.acked >= 40, "the first acknowledgements")
        killable.kill()
        yield deferLater(reactor, 3.0, lambda: None)
        killable.start()
        yield deferToThread(killable.wait)
        stats = yield done
    finally:
        yield service.stopService()
    assert stats.resent > 0  # the outage made the devices send again (+BUFF)
    assert stats.acked == stats.sent == 150
    client = pymongo.MongoClient(killable.uri, serverSelectionTimeoutMS=10000)
    try:
        docs = list(client["sim_outage"]["DadosVeiculo"].find({}, {"IMEI": 1, "raw": 1, "dataDevice": 1}))
    finally:
        client.close()
    assert len(docs) == 150  # 5 devices x 30 reports: none lost, none twice
    assert len({d["_id"] for d in docs}) == 150
    print(f"\n150 reports, {stats.resent} re-sent during the outage, stored once each")


@pytest.mark.parametrize("driver", ["gv50", "teltonika"])
@pytest_twisted.inlineCallbacks
def test_a_block_command_reaches_a_simulated_device_and_is_confirmed(start_server, driver: str) -> None:
    server = yield start_server(listeners=[{"driver": driver}],
                                commands={"poll_interval": 0.2, "ack_timeout": 5.0, "max_attempts": 3,
                                          "block_max_speed_kmh": 1000.0})
    fleet = Fleet(reactor, options(driver, server.port(0), devices=1, interval=0.5))
    fleet.start()
    try:
        model = fleet.links[0].model
        db = server.sync_db()
        yield until(lambda: db["Veiculo"].find_one({"IMEI": model.imei}), "the vehicle's first report")
        db["Veiculo"].update_one({"IMEI": model.imei}, {"$set": {"comandoBloqueo": True}})
        command = yield until(lambda: db["Comando"].find_one({"IMEI": model.imei, "status": "confirmed"}),
                              "the confirmed block")
        assert command["type"] == "block"
        yield until(lambda: db["Veiculo"].find_one({"IMEI": model.imei, "bloqueado": True}), "bloqueado")
        assert model.output is True and fleet.stats.command_answers == 1
    finally:
        yield fleet.stop()


@pytest_twisted.inlineCallbacks
def test_the_cli_stops_on_sigint_and_prints_its_summary(start_server) -> None:
    server = yield start_server(listeners=[{"driver": "gv50"}])
    process = subprocess.Popen(
        [sys.executable, "-m", "waygps.cli.main", "simulate", "--driver", "gv50", "--devices", "3",
         "--interval", "0.3", "--progress", "0.5", "--json", f"127.0.0.1:{server.port(0)}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        db = server.sync_db()
        # Nine stored: the acknowledgements of the first six have reached the devices by then (a report
        # is stored a moment before its acknowledgement is written).
        yield until(lambda: db["DadosVeiculo"].count_documents({}) >= 9 or process.poll() is not None,
                    "reports of the simulated devices")
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGINT)
        out, err = yield deferToThread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["devices"] == 3 and summary["acked"] >= 6 and summary["connected"] == 0
    assert summary["ack_latency_p50_ms"] is not None
    assert "connected 3/3" in err.decode()  # the progress line
    stored = db["DadosVeiculo"].count_documents({})
    assert stored >= summary["acked"]  # every acknowledged report is in the store
