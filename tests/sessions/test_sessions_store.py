"""SessionRegistry against the real embedded store: the allow-list query and reset_stale."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor

from sessions_fakes import FakeConnection, FakeSink, listener
from waygps.bus import EventBus
from waygps.config import MongoConfig
from waygps.sessions import SessionRegistry
from waygps.store.connection import MongoStore

pytestmark = pytest.mark.integration

IMEI = "862894020180553"


@pytest.fixture
def vehicles(mongo_uri: str, mongo_db_name: str) -> Any:
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client[mongo_db_name]["Veiculo"]
    client.close()


@pytest.fixture
def store(mongo_uri: str, mongo_db_name: str) -> Any:
    store = MongoStore(MongoConfig(uri=mongo_uri, database=mongo_db_name), mongo_uri, pool_size=1)
    store.connect()
    yield store
    pytest_twisted.blockon(store.close())


@pytest_twisted.inlineCallbacks
def test_allow_list_reads_the_vehicles_collection(store: Any, vehicles: Any) -> None:
    vehicles.insert_one({"IMEI": IMEI, "ds_placa": "ABC1234"})
    sessions = SessionRegistry(store, FakeSink(), EventBus(), reactor, "i1")
    closed = listener(accept_unknown_devices=False)
    assert (yield sessions.authorize(IMEI, closed)) is True
    assert (yield sessions.authorize("356307042441013", closed)) is False


@pytest_twisted.inlineCallbacks
def test_reset_stale_marks_offline_only_what_this_instance_left_online(store: Any, vehicles: Any) -> None:
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    vehicles.insert_many([
        {"IMEI": "a-left-online", "online": True, "instance": "i1", "lastSeen": old},
        {"IMEI": "b-other-instance", "online": True, "instance": "i2", "lastSeen": old},
        {"IMEI": "c-no-instance", "online": True, "lastSeen": old},
        {"IMEI": "d-connected-now", "online": True, "instance": "i1", "lastSeen": old},
        {"IMEI": "e-seen-since-start", "online": True, "instance": "i1", "lastSeen": future},
        {"IMEI": "f-offline", "online": False, "instance": "i1", "lastSeen": old},
        {"IMEI": "g-never-seen", "online": True, "instance": "i1"},
    ])
    sessions = SessionRegistry(store, FakeSink(), EventBus(), reactor, "i1")
    sessions.startService()
    sessions.attach(FakeConnection("d-connected-now"))
    changed = yield sessions.reset_stale()
    online = {doc["IMEI"]: doc["online"] for doc in vehicles.find({}, {"IMEI": 1, "online": 1})}
    assert online == {
        "a-left-online": False, "b-other-instance": True, "c-no-instance": False, "d-connected-now": True,
        "e-seen-since-start": True, "f-offline": False, "g-never-seen": False,
    }
    assert changed == 3
