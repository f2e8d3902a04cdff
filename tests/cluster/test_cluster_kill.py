"""Instance A is a real `twistd waygps` killed with SIGKILL; instance B (in this process) carries on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import threads

from tests.cluster.cluster_support import TOKEN
from tests.commands.test_commands_e2e import GV50_IMEI, connect, gtfri, until
from tests.conftest import free_port
from tests.foundation.test_twistd_run import wait_for_port

BIN = Path(sys.executable).parent
PARKED_IMEI = "862894020180999"  # stays on A and never comes back


def sack(count: int) -> bytes:
    return f"+SACK:{count:04X}$".encode()


def write_config(path: Path, uri: str, db: str, instance: str, gv50: int, web: int) -> Path:
    path.write_text(f"""
[mongodb]
uri = "{uri}"
database = "{db}"
[commands]
instance_id = "{instance}"
[cluster]
heartbeat_interval = 0.5
lease_seconds = 2.0
[[listener]]
driver = "gv50"
host = "127.0.0.1"
port = {gv50}
[websocket]
host = "127.0.0.1"
port = {web}
[[websocket.tokens]]
token = "{TOKEN}"
devices = "*"
""")
    return path


@pytest_twisted.inlineCallbacks
def test_sigkill_devices_reconnect_to_b_nothing_acked_lost_and_a_goes_offline_after_its_lease(
        tmp_path: Path, replica_store: Any, cluster_db: str, start_instance: Any) -> None:
    ports = {"gv50": free_port(), "web": free_port()}
    config = write_config(tmp_path / "a.toml", replica_store.uri, cluster_db, "a", ports["gv50"], ports["web"])
    log = (tmp_path / "a.log").open("wb")
    a = subprocess.Popen([str(BIN / "twistd"), "--nodaemon", "--pidfile=", "waygps", "--config", str(config)],
                         stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield threads.deferToThread(wait_for_port, ports["web"], a)
        b = yield start_instance("b")
        db = b.sync_db()

        device = yield connect(ports["gv50"])
        parked = yield connect(ports["gv50"])
        parked.transport.write(gtfri(3.0, 1, PARKED_IMEI))
        # Built once: a re-sent report is the same bytes (its fix time included).
        reports = {count: gtfri(20.0 + count, count) for count in range(1, 7)}
        for count in range(1, 4):
            device.transport.write(reports[count])
            yield until(lambda c=count: sack(c) in device.received, f"SACK {count} from A")
        yield until(lambda: sack(1) in parked.received, "the parked device's SACK")
        yield until(lambda: db["Veiculo"].find_one({"IMEI": PARKED_IMEI, "online": True, "instance": "a"}),
                    "A's devices online in the store")

        os.kill(a.pid, signal.SIGKILL)
        a.wait(30)
        device.transport.loseConnection()  # the device notices its link is gone...
        moved = yield connect(b.port())  # ...and comes back through the balancer to B
        for count in range(3, 7):  # report 3 again: the device did not know whether it was stored
            moved.transport.write(reports[count])
            yield until(lambda c=count: sack(c) in moved.received, f"SACK {count} from B")
        keys = sorted(doc["speed"] for doc in db["DadosVeiculo"].find({"IMEI": GV50_IMEI}))
        assert keys == [21.0, 22.0, 23.0, 24.0, 25.0, 26.0]  # every acknowledged report, once

        yield until(lambda: db["Veiculo"].find_one({"IMEI": PARKED_IMEI, "online": False}),
                    "the parked device offline once A's lease expired")
        instance_a = db["WayGPSInstance"].find_one({"_id": "a"})
        assert instance_a["state"] == "expired" and instance_a["expiredBy"] == "b"
        # expired by the lease, not before it: B's clock was past A's last heartbeat + lease_seconds
        assert (instance_a["expiredAt"] - instance_a["heartbeat"]).total_seconds() >= 2.0
        vehicle = db["Veiculo"].find_one({"IMEI": GV50_IMEI})
        assert vehicle["online"] is True and vehicle["instance"] == "b"
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
        log.close()

