"""Leases with task.Clock on the real store: an instance past its lease has its devices marked offline."""

from __future__ import annotations


import pytest_twisted
from twisted.internet import threads
from twisted.internet.task import Clock

from waygps.cli.status import cluster_summary

from waygps.cluster.lease import EXPIRED, RUNNING, STOPPED, LeaseKeeper, is_stale, utc
from waygps.cluster.status import cluster_lines
from waygps.config import ClusterConfig, Config, MongoConfig
from waygps.store.connection import MongoStore

CONFIG = ClusterConfig(heartbeat_interval=5.0, lease_seconds=20.0)


def keeper(store: MongoStore, name: str, clock: Clock, devices: int = 0) -> LeaseKeeper:
    return LeaseKeeper(store, name, CONFIG, clock, devices=lambda: devices, version="test")


@pytest_twisted.inlineCallbacks
def test_expiry_marks_the_dead_instances_devices_offline_once(mongo_uri: str, mongo_db_name: str) -> None:
    store = MongoStore(MongoConfig(uri=mongo_uri, database=mongo_db_name), mongo_uri)
    store.connect()
    try:
        vehicles = store.collection("vehicles")
        yield vehicles.insert_many([{"IMEI": "1", "online": True, "instance": "a"},
                                    {"IMEI": "2", "online": True, "instance": "b"},
                                    {"IMEI": "3", "online": False, "instance": "a"}])
        clock_a, clock_b, clock_c = Clock(), Clock(), Clock()
        for clock in (clock_a, clock_b, clock_c):
            clock.advance(1_000_000)
        a, b, c = keeper(store, "a", clock_a, 2), keeper(store, "b", clock_b), keeper(store, "c", clock_c)
        yield a.beat()
        yield b.beat()
        assert (yield b.expire_others(clock_b.seconds())) == []

        clock_b.advance(19.0)  # a's heartbeat is 19 s old: still within its lease
        yield b.beat()
        assert b.expired == []
        assert (yield vehicles.find_one({"IMEI": "1"}))["online"] is True

        clock_b.advance(2.0)
        clock_c.advance(21.0)
        yield b.beat()
        yield c.beat()  # c sees the same stale lease, but b claimed it first
        assert b.expired == ["a"] and c.expired == []
        online = {doc["IMEI"]: doc["online"] for doc in (yield vehicles.find({}))}
        assert online == {"1": False, "2": True, "3": False}
        doc_a = yield store.collection("instances").find_one({"_id": "a"})
        assert doc_a["state"] == EXPIRED and doc_a["expiredBy"] == "b" and doc_a["devices"] == 2

        # a comes back (it was only cut off): it runs again, and says so in its log
        yield a.beat()
        assert (yield store.collection("instances").find_one({"_id": "a"}))["state"] == RUNNING
        # a clean stop is not a lease to expire
        yield b.beat(STOPPED)
        clock_c.advance(100.0)
        yield c.beat()
        assert (yield store.collection("instances").find_one({"_id": "b"}))["state"] == STOPPED

        # `waygps status -c FILE` reads the same documents
        config = Config(mongodb=MongoConfig(uri=mongo_uri, database=mongo_db_name), path="waygps.toml")
        lines = yield threads.deferToThread(cluster_summary, config, 5.0)
        assert lines[0].startswith("cluster              1 running instance, 1 STALE, 2 stopped or expired")
        assert sorted(line.split()[0] for line in lines[1:]) == ["a", "b", "c"]
    finally:
        yield store.close()


def test_status_lines_flag_a_stale_instance() -> None:
    now = 1_000_000.0
    docs = [
        {"_id": "a", "host": "h1", "state": RUNNING, "heartbeat": utc(now - 2), "leaseSeconds": 20.0,
         "devices": 3, "reportsPerSecond": 12.5, "version": "1.0", "started": utc(now - 600)},
        {"_id": "b", "host": "h2", "state": RUNNING, "heartbeat": utc(now - 45), "leaseSeconds": 20.0,
         "devices": 1, "reportsPerSecond": 0.0, "version": "1.0", "started": utc(now - 900)},
        {"_id": "c", "host": "h3", "state": STOPPED, "heartbeat": utc(now - 500), "leaseSeconds": 20.0},
    ]
    lines = cluster_lines(docs, now)
    assert lines[0] == "cluster              2 running instances, 1 STALE, 1 stopped or expired"
    assert lines[1].startswith("  a  host h1  started ") and "devices 3  12.5 reports/s  heartbeat 2 s ago" in lines[1]
    assert lines[1].endswith("running")
    assert "STALE (lease 20 s missed)" in lines[2] and "heartbeat 45 s ago" in lines[2]
    assert lines[3].endswith("stopped")
    assert not is_stale(docs[0], now) and is_stale(docs[1], now) and not is_stale(docs[2], now)
