"""The statistics writer on the embedded store: instances add up, a restart neither loses nor double-counts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.internet.task import Clock

from waygps.bus import EventBus
from waygps.config import MongoConfig, StatsConfig
from waygps.events import CommandStatus, DeviceConnected, Position
from waygps.stats.collector import StatsCollector
from waygps.stats.report import daily
from waygps.store.connection import MongoStore

pytestmark = pytest.mark.integration

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"


def store(uri: str, db: str) -> MongoStore:
    s = MongoStore(MongoConfig(uri=uri, database=db), uri)
    s.connect()
    return s


def collector(s: MongoStore, instance: str, clock: Clock) -> tuple[StatsCollector, EventBus]:
    bus = EventBus()
    c = StatsCollector(StatsConfig(), s, bus, clock, instance)
    c.start()
    return c, bus


def position(seconds: float, delay: float, latency: float, clock: Clock) -> Position:
    """A report received ``latency`` s before the clock's now, fixed ``delay`` s before it was received."""
    received = datetime.fromtimestamp(clock.seconds(), timezone.utc) - timedelta(seconds=latency)
    return Position(imei=IMEI, protocol="gv50", device_time=received - timedelta(seconds=delay),
                    server_time=received, event="tracking", key=str(seconds),
                    valid=True, latitude=1.0, longitude=2.0)


def feed(c: StatsCollector, bus: EventBus, clock: Clock, n: int) -> None:
    bus.publish(DeviceConnected(imei=IMEI, protocol="gv50", server_time=NOON, peer="p", transport="tcp",
                                listener="gv50-tcp"))
    for i in range(n):
        c.received("gv50-tcp", [object()])  # not a Position: not counted as a report
        c.received("gv50-tcp", [position(i, 5.0, 0.01, clock)])
        bus.publish(position(i, 5.0, 0.01, clock))
        clock.advance(1)
    c.rejected("gv50-tcp", "bad_checksum")
    c.duplicate(IMEI, "gv50")
    bus.publish(CommandStatus(command_id="c1", imei=IMEI, command_type="block", status="sent", reason="", time=NOON))


def read(uri: str, db: str) -> list[dict]:
    import pymongo

    client = pymongo.MongoClient(uri)
    try:
        return [daily(d) for d in client[db]["EstadisticasRecepcion"].find()]
    finally:
        client.close()


@pytest_twisted.inlineCallbacks
def test_two_instances_add_up(mongo_uri: str, mongo_db_name: str) -> None:
    s1, s2 = store(mongo_uri, mongo_db_name), store(mongo_uri, mongo_db_name)
    clock = Clock()
    clock.advance(NOON.timestamp())
    try:
        a, bus_a = collector(s1, "host-a", clock)
        b, bus_b = collector(s2, "host-b", clock)
        feed(a, bus_a, clock, 3)
        feed(b, bus_b, clock, 4)
        # Both create the day's document at the same moment: neither flush is lost.
        yield DeferredList([a.flush(), b.flush()], fireOnOneErrback=True, consumeErrors=True)
        feed(a, bus_a, clock, 2)
        yield a.flush()
        yield a.stop()
        yield b.stop()
    finally:
        yield s1.close()
        yield s2.close()
    [day] = read(mongo_uri, mongo_db_name)
    assert day["day"] == "2026-11-28" and day["listener"] == "gv50-tcp"
    assert day["received"] == 3 + 4 + 2 + 3  # reports plus one rejected frame per feed
    assert day["stored"] == 9 and day["duplicates"] == 3 and day["rejected"] == 3
    assert day["rejected_by"] == {"bad_checksum": 3}
    assert day["devices_connected"] == 1  # one device, seen by both instances
    assert day["commands"]["sent"] == 3
    assert day["store_latency"]["count"] == 9 and day["store_latency"]["mean_ms"] == pytest.approx(10.0)
    assert day["store_latency"]["p95_ms"] == 10
    assert day["device_delay"]["mean_ms"] == pytest.approx(5000.0) and day["device_delay"]["p95_ms"] == 5000


@pytest_twisted.inlineCallbacks
def test_a_flush_applied_twice_counts_once_and_a_restart_adds_on(mongo_uri: str, mongo_db_name: str) -> None:
    s = store(mongo_uri, mongo_db_name)
    clock = Clock()
    clock.advance(NOON.timestamp())
    try:
        first, bus = collector(s, "host-a", clock)
        feed(first, bus, clock, 5)
        first.take()
        flush = first.pending[0]
        collection = s.db["EstadisticasRecepcion"]
        # The reply to a write was lost and the write is tried again, then the loop flushes it too.
        yield first.apply(collection, flush)
        yield first.apply(collection, flush)
        yield first.flush()
        assert not first.pending
        feed(first, bus, clock, 1)
        yield first.stop()  # stopping writes what was counted since the last flush
        # The same host starts again (same instance id, new run) in the same minute.
        second, bus2 = collector(s, "host-a", clock)
        feed(second, bus2, clock, 2)
        yield second.stop()
    finally:
        yield s.close()
    [day] = read(mongo_uri, mongo_db_name)
    assert day["stored"] == 5 + 1 + 2
    assert day["received"] == 5 + 1 + 2 + 3


@pytest_twisted.inlineCallbacks
def test_a_store_outage_keeps_the_counts_for_later(mongo_uri: str, mongo_db_name: str) -> None:
    s = store(mongo_uri, mongo_db_name)
    clock = Clock()
    clock.advance(NOON.timestamp())
    broken: Any = type("Broken", (), {"db": property(lambda self: _Unavailable())})()
    try:
        c, bus = collector(broken, "host-a", clock)
        feed(c, bus, clock, 4)
        yield c.flush()  # fails: logged, kept
        assert len(c.pending) == 1
        c.store = s
        yield c.flush()
        assert not c.pending
        yield c.stop()
    finally:
        yield s.close()
    [day] = read(mongo_uri, mongo_db_name)
    assert day["stored"] == 4


class _Unavailable:
    def __getitem__(self, name: str) -> Any:
        return self

    def update_one(self, *a: Any, **k: Any) -> Any:
        from twisted.internet.defer import fail

        return fail(ConnectionError("store away"))
