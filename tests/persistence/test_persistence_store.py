"""The persistence service against the embedded store: indexes, batching, coalescing, duplicates, quality."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Iterator

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor

import persistence_support
from persistence_support import IMEI, OTHER, config, sample
from waygps.bus import EventBus
from waygps.events import Heartbeat, Position
from waygps.persistence import PersistenceService, ReportRejected
from waygps.store.connection import MongoStore

pytestmark = pytest.mark.integration

# The real reactor's clock decides what is "in the future": reports of an hour ago.
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
position = partial(persistence_support.position, base=T0)


class Running:
    def __init__(self, mongo_uri: str, db_name: str) -> None:
        self.mongo_uri = mongo_uri
        self.db_name = db_name
        self.client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        self.sync = self.client[db_name]
        self.bus = EventBus()
        self.published: list[Any] = []
        self.unstored: list[str] = []
        self.bus.subscribe(self.on_event)
        self.services: list[PersistenceService] = []
        self.stores: list[MongoStore] = []

    def on_event(self, event: Any) -> None:
        # What the WebSocket would show must already be in MongoDB. (Recorded, not asserted here:
        # the publisher logs and swallows a subscriber's exception.)
        if isinstance(event, Position) and self.sync["DadosVeiculo"].find_one({"_id": event.document_id}) is None:
            self.unstored.append(event.document_id)
        self.published.append(event)

    def start(self, days: int = 90, history_geo_index: bool = False, **persistence: Any) -> PersistenceService:
        persistence.setdefault("batch_interval_ms", 30.0)
        cfg = config(database=self.db_name, uri=self.mongo_uri, days=days, history_geo_index=history_geo_index,
                     **persistence)
        store = MongoStore(cfg.mongodb, self.mongo_uri)
        store.connect()
        service = PersistenceService(store, cfg, self.bus, reactor)
        self.stores.append(store)
        self.services.append(service)
        return service

    def close(self) -> None:
        assert self.unstored == [], "published before stored"
        for service in self.services:
            if service.running:
                pytest_twisted.blockon(service.stopService())
        for store in self.stores:
            pytest_twisted.blockon(store.close())
        self.client.close()


@pytest.fixture
def running(mongo_uri: str, mongo_db_name: str) -> Iterator[Running]:
    r = Running(mongo_uri, mongo_db_name)
    yield r
    r.close()


def indexes(collection: Any) -> dict[tuple, dict]:
    return {tuple(info["key"]): info for info in collection.index_information().values()}


@pytest_twisted.inlineCallbacks
def test_prepare_creates_the_contract_indexes(running: Running) -> None:
    service = running.start()
    report = yield service.prepare()
    positions = indexes(running.sync["DadosVeiculo"])
    assert (("IMEI", 1), ("dataDevice", -1)) in positions
    assert (("location", "2dsphere"),) not in positions  # [mongodb] history_geo_index is off by default
    assert positions[(("dataServidor", 1),)]["expireAfterSeconds"] == 90 * 86400
    vehicles = indexes(running.sync["Veiculo"])
    assert vehicles[(("IMEI", 1),)]["unique"] is True
    assert (("location", "2dsphere"),) in vehicles
    commands = indexes(running.sync["Comando"])
    assert (("IMEI", 1), ("status", 1), ("createdAt", 1)) in commands
    assert (("status", 1), ("expiresAt", 1)) in commands
    assert report["problems"] == [] and len(report["created"]) == 8
    # the capped collection of rejected frames and its time index (issue 16)
    assert report["created"][-2:] == ["FramesRejeitados", "FramesRejeitados.time_-1"]
    assert running.sync["FramesRejeitados"].options().get("capped") is True
    again = yield service.prepare()
    assert again == {"created": [], "changed": [], "kept": [], "problems": []}


@pytest_twisted.inlineCallbacks
def test_the_history_geo_index_is_an_option_and_an_existing_one_is_left_alone(running: Running) -> None:
    report = yield running.start(history_geo_index=True).prepare()
    assert "DadosVeiculo.location_2dsphere" in report["created"]
    assert (("location", "2dsphere"),) in indexes(running.sync["DadosVeiculo"])
    report = yield running.start(history_geo_index=False).prepare()
    assert report["kept"] == ["DadosVeiculo.location_2dsphere"] and report["created"] == []
    assert (("location", "2dsphere"),) in indexes(running.sync["DadosVeiculo"])  # not dropped


@pytest_twisted.inlineCallbacks
def test_vehicles_near_a_place_are_found_by_the_vehicle_geo_index(running: Running) -> None:
    service = running.start()
    yield service.prepare()
    service.startService()
    yield service.deliver([position(key="0001", lat=-17.72, lon=-62.90), position(key="0002", imei="862894020180561",
                                                                                  lat=-16.50, lon=-68.15)])
    yield service.flush()
    near = {"location": {"$near": {"$geometry": {"type": "Point", "coordinates": [-62.9, -17.7]},
                                   "$maxDistance": 10000}}}
    found = [d["IMEI"] for d in running.sync["Veiculo"].find(near)]
    assert found == [persistence_support.IMEI]


@pytest_twisted.inlineCallbacks
def test_retention_changes_follow_the_configuration(running: Running) -> None:
    yield running.start(days=90).prepare()
    report = yield running.start(days=30).prepare()
    assert report["changed"] == ["DadosVeiculo.dataServidor_1"]
    ttl = indexes(running.sync["DadosVeiculo"])[(("dataServidor", 1),)]
    assert ttl["expireAfterSeconds"] == 30 * 86400
    yield running.start(days=0).prepare()
    plain = indexes(running.sync["DadosVeiculo"])[(("dataServidor", 1),)]
    assert "expireAfterSeconds" not in plain  # kept forever, still indexed for `waygps cleanup`
    yield running.start(days=7).prepare()
    assert indexes(running.sync["DadosVeiculo"])[(("dataServidor", 1),)]["expireAfterSeconds"] == 7 * 86400


@pytest_twisted.inlineCallbacks
def test_a_non_unique_vehicle_index_is_reported_not_replaced(running: Running) -> None:
    running.sync["Veiculo"].create_index("IMEI")
    report = yield running.start().prepare()
    assert report["problems"] == ["Veiculo.IMEI_1: not unique"]


@pytest_twisted.inlineCallbacks
def test_one_batch_stores_every_report_and_one_upsert_per_device(running: Running) -> None:
    service = running.start(batch_size=100, batch_interval_ms=200.0)
    yield service.prepare()
    service.startService()
    batches = sample("waygps_store_batch_seconds_count")
    first = service.deliver([position(key=f"k{n}", minutes=m, lat=-17.0 - m / 100, ignition=m % 2 == 0)
                             for n, m in enumerate([3, 1, 5, 2, 4])])
    second = service.deliver([position(imei=OTHER, key="o1", minutes=1), position(imei=OTHER, key="o2",
                                                                                  minutes=2, valid=False)])
    yield first
    yield second
    assert sample("waygps_store_batch_seconds_count") == batches + 1
    assert running.sync["DadosVeiculo"].count_documents({}) == 7
    yield service.flush()
    mine = running.sync["Veiculo"].find_one({"IMEI": IMEI})
    assert mine["latitude"] == -17.05 and mine["ignicao"] is False and mine["online"] is True
    assert mine["dataDevice"] == (T0 + timedelta(minutes=5)).replace(tzinfo=None)
    other = running.sync["Veiculo"].find_one({"IMEI": OTHER})
    assert other["dataDevice"] == (T0 + timedelta(minutes=1)).replace(tzinfo=None)
    assert running.sync["Veiculo"].count_documents({}) == 2
    stored = running.sync["DadosVeiculo"].find_one({"_id": position(key="k2", minutes=5).document_id})
    assert stored["IMEI"] == IMEI and stored["attributes"]["quality"] == "excelente"
    assert stored["location"] == {"type": "Point", "coordinates": [-63.1, -17.05]}
    assert len(running.published) == 7


@pytest_twisted.inlineCallbacks
def test_a_resent_report_is_stored_once_and_acknowledged_again(running: Running) -> None:
    service = running.start(batch_interval_ms=5.0)
    yield service.prepare()
    service.startService()
    duplicates = sample("waygps_duplicate_reports_total", driver="gv50")
    yield service.deliver([position(key="0A5D")])
    yield service.deliver([position(key="0A5D", buffered=True)])  # +BUFF replay of the same report
    assert running.sync["DadosVeiculo"].count_documents({}) == 1
    assert sample("waygps_duplicate_reports_total", driver="gv50") == duplicates + 1
    assert len(running.published) == 1


@pytest_twisted.inlineCallbacks
def test_an_implausible_report_is_stored_invalid_and_does_not_move_the_vehicle(running: Running) -> None:
    service = running.start(batch_interval_ms=5.0)
    yield service.prepare()
    service.startService()
    yield service.deliver([position(key="good", minutes=1, lat=-17.5)])
    yield service.deliver([position(key="zero", minutes=2, lat=0.0, lon=0.0),
                           position(key="fast", minutes=3, speed=950.0)])
    yield service.flush()
    zero = running.sync["DadosVeiculo"].find_one({"_id": position(key="zero", minutes=2).document_id})
    assert zero["valid"] is False and zero["attributes"]["qualityFlag"] == "zero_coordinates" and "location" not in zero
    fast = running.sync["DadosVeiculo"].find_one({"_id": position(key="fast", minutes=3).document_id})
    assert fast["attributes"]["qualityFlag"] == "impossible_speed"
    vehicle = running.sync["Veiculo"].find_one({"IMEI": IMEI})
    assert vehicle["latitude"] == -17.5
    assert vehicle["lastSeen"] == (T0 + timedelta(minutes=3)).replace(tzinfo=None)


@pytest_twisted.inlineCallbacks
def test_a_report_bson_cannot_carry_is_refused_alone(running: Running) -> None:
    service = running.start(batch_interval_ms=50.0)
    yield service.prepare()
    service.startService()
    bad = service.deliver([position(key="bad", attributes={"thing": object()})])
    good = service.deliver([position(imei=OTHER, key="good")])
    outcome: list[Any] = []
    bad.addErrback(lambda f: outcome.append(f.value))
    yield bad
    yield good
    assert isinstance(outcome[0], ReportRejected)
    assert [d["_id"] for d in running.sync["DadosVeiculo"].find()] == [position(imei=OTHER, key="good").document_id]


@pytest_twisted.inlineCallbacks
def test_a_heartbeat_refreshes_last_seen(running: Running) -> None:
    service = running.start()
    yield service.prepare()
    service.startService()
    yield service.deliver([Heartbeat(imei=IMEI, protocol="gv50", server_time=T0)])
    yield service.flush()
    vehicle = running.sync["Veiculo"].find_one({"IMEI": IMEI})
    assert vehicle["online"] is True and vehicle["lastSeen"] == T0.replace(tzinfo=None)
    assert "latitude" not in vehicle
