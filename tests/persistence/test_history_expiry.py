"""WayGPS's own expiry of old reports (``[retention] expiry``): chunked ranged deletes on the real
embedded store, the plain index it needs, its timer, and the configuration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock

from persistence_support import sample
from waygps.config import Config, ConfigError, MongoConfig, RetentionConfig, build
from waygps.drivers import find_drivers
from waygps.indexes import ensure_indexes
from waygps.store.connection import MongoStore
from waygps.store.expiry import HistoryExpiry

NOW = datetime.now(timezone.utc).replace(microsecond=0)


class _Counting:
    """The positions collection, counting the ranged deletes."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.deletes = 0

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        self.deletes += 1
        return self.collection.delete_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


class _Store:
    def __init__(self, store: MongoStore) -> None:
        self.positions = _Counting(store.collection("positions"))

    def collection(self, kind: str) -> Any:
        assert kind == "positions"
        return self.positions


def _documents(sync: Any, docs: list[dict]) -> None:
    for first in range(0, len(docs), 1000):
        sync.insert_many(docs[first:first + 1000])


def _running(expiry: HistoryExpiry) -> HistoryExpiry:
    expiry.running = True  # expire() stops early when the service is not running
    return expiry


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_expired_reports_go_in_chunks_and_recent_ones_stay(mongo_uri: str, mongo_db_name: str) -> None:
    sync = pymongo.MongoClient(mongo_uri)[mongo_db_name]["DadosVeiculo"]
    sync.create_index([("dataServidor", 1)])
    _documents(sync, [{"_id": f"old{n}", "dataServidor": NOW - timedelta(days=40, seconds=n)} for n in range(2500)]
               + [{"_id": f"new{n}", "dataServidor": NOW - timedelta(days=29, seconds=n)} for n in range(10)])
    store = MongoStore(MongoConfig(database=mongo_db_name), mongo_uri)
    store.connect()
    counting = _Store(store)
    before = sample("waygps_history_expired_total")
    try:
        deleted = yield _running(HistoryExpiry(counting, 30, 600, reactor, chunk=1000)).expire()
    finally:
        yield store.close()
    assert deleted == 2500
    assert sorted(doc["_id"] for doc in sync.find({}, {"_id": 1})) == sorted(f"new{n}" for n in range(10))
    assert counting.positions.deletes == 3  # 1,000 + 1,000 + the last 500
    assert sample("waygps_history_expired_total") == before + 2500


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_a_chunk_received_at_one_instant_goes_whole(mongo_uri: str, mongo_db_name: str) -> None:
    sync = pymongo.MongoClient(mongo_uri)[mongo_db_name]["DadosVeiculo"]
    sync.create_index([("dataServidor", 1)])
    instant = NOW - timedelta(days=31)
    _documents(sync, [{"_id": f"same{n}", "dataServidor": instant} for n in range(30)]
               + [{"_id": f"later{n}", "dataServidor": instant + timedelta(seconds=1 + n)} for n in range(5)])
    store = MongoStore(MongoConfig(database=mongo_db_name), mongo_uri)
    store.connect()
    try:
        deleted = yield _running(HistoryExpiry(_Store(store), 30, 600, reactor, chunk=10)).expire()
    finally:
        yield store.close()
    assert deleted == 35 and sync.count_documents({}) == 0


def _config(uri: str, database: str, expiry: str, days: int = 30) -> Config:
    return Config(mongodb=MongoConfig(uri=uri, database=database), retention=RetentionConfig(days=days, expiry=expiry))


@pytest.mark.integration
@pytest.mark.parametrize("uri, expiry, ttl", [("", "auto", False), ("mongodb://elsewhere/", "auto", True),
                                              ("mongodb://elsewhere/", "waygps", False), ("", "server", True)])
@pytest_twisted.inlineCallbacks
def test_the_history_index_has_a_ttl_only_when_the_server_expires(mongo_uri: str, mongo_db_name: str, uri: str,
                                                                   expiry: str, ttl: bool) -> None:
    config = _config(uri, mongo_db_name, expiry)
    store = MongoStore(config.mongodb, mongo_uri)
    store.connect()
    try:
        yield ensure_indexes(store, config)
    finally:
        yield store.close()
    info = {tuple(i["key"]): i for i in pymongo.MongoClient(mongo_uri)[mongo_db_name]["DadosVeiculo"]
            .index_information().values()}
    assert (("dataServidor", 1),) in info
    assert ("expireAfterSeconds" in info[(("dataServidor", 1),)]) is ttl


class _Nothing:
    def __init__(self) -> None:
        self.finds = 0

    def collection(self, kind: str) -> "_Nothing":
        return self

    def find_one(self, *_: Any, **__: Any) -> Any:
        self.finds += 1
        return succeed(None)


def test_a_pass_every_interval_and_none_after_stop() -> None:
    clock = MemoryReactorClock()
    store = _Nothing()
    expiry = HistoryExpiry(store, 30, 600, clock)
    expiry.startService()
    clock.advance(599)
    assert store.finds == 0
    clock.advance(1)
    assert store.finds == 1
    clock.advance(600)
    assert store.finds == 2
    expiry.stopService()
    clock.advance(3600)
    assert store.finds == 2 and not clock.getDelayedCalls()


def test_a_failed_pass_is_logged_and_tried_again() -> None:
    clock = MemoryReactorClock()

    class Failing(_Nothing):
        def find_one(self, *_: Any, **__: Any) -> Any:
            self.finds += 1
            raise ConnectionError("store away")

    store = Failing()
    expiry = HistoryExpiry(store, 30, 600, clock)
    expiry.startService()
    clock.advance(600)
    clock.advance(600)
    assert store.finds == 2
    expiry.stopService()


def test_configuration() -> None:
    drivers = find_drivers()
    embedded = build({}, drivers)
    assert embedded.retention.expiry == "auto" and embedded.retention.by_waygps(embedded.mongodb)
    remote = build({"mongodb": {"uri": "mongodb://db.example/"}}, drivers)
    assert not remote.retention.by_waygps(remote.mongodb)
    assert not build({"retention": {"days": 0}}, drivers).retention.by_waygps(embedded.mongodb)
    forced = build({"mongodb": {"uri": "mongodb://db.example/"}, "retention": {"expiry": "waygps"}}, drivers)
    assert forced.retention.by_waygps(forced.mongodb)
    with pytest.raises(ConfigError, match="retention.expiry"):
        build({"retention": {"expiry": "never"}}, drivers)
    with pytest.raises(ConfigError, match="retention.interval"):
        build({"retention": {"interval": 0}}, drivers)
