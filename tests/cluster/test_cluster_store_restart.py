"""The store restarts: the feed resumes from its resume token and misses nothing stored meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest_twisted
from twisted.internet import threads

from tests.cluster.cluster_support import ReplicaStore
from tests.relay import StoreRelay
from tests.cluster.test_cluster_e2e import feed_client, updates
from tests.commands.test_commands_e2e import GV50_IMEI, connect, gtfri, until
from waygps.documents import position_document
from waygps.events import Position


def stored_position(speed: float, step: int, after: datetime) -> dict:
    """A position stored by someone else, fixed a fraction of a second after ``after`` (the feed sends
    no report older than the newest one it sent, and the device's reports carry the time of now)."""
    when = after + timedelta(milliseconds=100 * (step + 1))
    return position_document(Position(imei=GV50_IMEI, protocol="gv50", device_time=when, server_time=when,
                                      event="GTFRI", key=f"restart-{step}", valid=True, latitude=-17.7,
                                      longitude=-63.1, speed=speed))


def first_fix(dashboard: Any) -> datetime:
    return datetime.fromisoformat(updates(dashboard)[0]["data"]["fecha_gps"].replace("Z", "+00:00"))


@pytest_twisted.inlineCallbacks
def test_feed_resumes_after_a_store_restart_without_missing_positions(start_instance: Any) -> None:
    import pymongo

    store = ReplicaStore()
    try:
        a = yield start_instance("a", uri=store.uri)
        dashboard = yield feed_client(a)
        device = yield connect(a.port())
        device.transport.write(gtfri(31.0, 1))
        yield until(lambda: updates(dashboard), "the first gps_update")

        yield threads.deferToThread(store.restart)
        # Stored while the instance's change stream is (re)connecting: written straight into the store.
        client = pymongo.MongoClient(store.uri, serverSelectionTimeoutMS=10000)
        try:
            collection = client[a.db_name]["DadosVeiculo"]
            yield threads.deferToThread(collection.insert_many,
                                        [stored_position(40.0 + n, n, first_fix(dashboard)) for n in range(5)])
        finally:
            client.close()
        yield until(lambda: len(updates(dashboard)) >= 6, "the five positions stored during the restart")
        speeds = sorted(u["data"]["velocidad"] for u in updates(dashboard))
        assert speeds == [31.0, 40.0, 41.0, 42.0, 43.0, 44.0]

        device.transport.write(gtfri(32.0, 2))  # the device's own path works again too
        yield until(lambda: len(updates(dashboard)) >= 7, "a new report after the restart")
        assert a.service.cluster.follower.resets == 0
        yield a.stop()
    finally:
        if store.process is not None:
            store.kill()
        store.stop()


@pytest_twisted.inlineCallbacks
def test_feed_resumes_from_its_token_after_the_store_was_unreachable(replica_store: Any,
                                                                      start_instance: Any) -> None:
    """Deterministic: the positions are stored while the instance cannot reach the store at all."""
    import pymongo

    relay = StoreRelay(replica_store.uri)
    try:
        a = yield start_instance("a", uri=relay.uri)
        follower = a.service.cluster.follower
        dashboard = yield feed_client(a)
        device = yield connect(a.port())
        device.transport.write(gtfri(31.0, 1))
        yield until(lambda: updates(dashboard), "the first gps_update")

        yield relay.cut()
        yield until(lambda: not follower.connected, "the follower noticing the store is gone")
        client = pymongo.MongoClient(replica_store.uri, serverSelectionTimeoutMS=10000)
        try:
            collection = client[a.db_name]["DadosVeiculo"]
            yield threads.deferToThread(collection.insert_many,
                                        [stored_position(40.0 + n, n, first_fix(dashboard)) for n in range(5)])
        finally:
            client.close()
        relay.restore()
        yield until(lambda: len(updates(dashboard)) >= 6, "the five positions stored while it was away")
        speeds = sorted(u["data"]["velocidad"] for u in updates(dashboard))
        assert speeds == [31.0, 40.0, 41.0, 42.0, 43.0, 44.0]
        assert follower.resets == 0
        yield a.stop()
    finally:
        if not relay.listening.connected:
            relay.restore()
        yield relay.listening.stopListening()
