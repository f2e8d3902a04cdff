"""Helpers of the persistence tests: events, configurations, a scriptable collection, a killable store."""

from __future__ import annotations

from tests.conftest import StoreProcess

from datetime import datetime, timedelta, timezone
from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.defer import Deferred

from waygps.config import Config, MongoConfig, PersistenceConfig, RetentionConfig
from waygps.events import Position

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"
OTHER = "356307042441013"


def position(imei: str = IMEI, key: str = "k1", *, minutes: float = 0.0, lat: float = -17.72,
             lon: float = -63.1, valid: bool = True, protocol: str = "gv50", base: datetime = T0,
             **values: Any) -> Position:
    """A report ``minutes`` after ``base`` (device and server time alike unless given)."""
    when = base + timedelta(minutes=minutes)
    fields: dict[str, Any] = dict(imei=imei, protocol=protocol, device_time=when, server_time=when,
                                  event="GTFRI", key=key, valid=valid, latitude=lat, longitude=lon, speed=20.0,
                                  course=147.0, altitude=329.7, hdop=1.0, satellites=9)
    fields.update(values)
    return Position(**fields)


def config(database: str = "waygps", uri: str = "", days: int = 90, write_concern: str = "majority",
           history_geo_index: bool = False, **persistence: Any) -> Config:
    return Config(mongodb=MongoConfig(uri=uri, database=database, write_concern=write_concern,
                                      history_geo_index=history_geo_index),
                  persistence=PersistenceConfig(**persistence), retention=RetentionConfig(days=days))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Call:
    """One write the service sent to :class:`FakeCollection`; the test answers it."""

    def __init__(self, method: str, payload: list, ordered: bool) -> None:
        self.method = method
        self.payload = payload
        self.ordered = ordered
        self.deferred: Deferred = Deferred()

    def succeed(self) -> None:
        self.deferred.callback(None)

    def fail(self, error: Exception) -> None:
        self.deferred.errback(error)


class FakeCollection:
    """The two txmongo write methods the service uses, answered by hand (timing tests on a Clock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Call] = []
        self.write_concern: Any = None

    def with_options(self, write_concern: Any = None, **_: Any) -> "FakeCollection":
        self.write_concern = write_concern
        return self

    def insert_many(self, documents: list, ordered: bool = True) -> Deferred:
        call = Call("insert_many", list(documents), ordered)
        self.calls.append(call)
        return call.deferred

    def bulk_write(self, requests: list, ordered: bool = True) -> Deferred:
        call = Call("bulk_write", list(requests), ordered)
        self.calls.append(call)
        return call.deferred

    def pending(self) -> list[Call]:
        return [c for c in self.calls if not c.deferred.called]


class FakeStore:
    def __init__(self) -> None:
        self.collections = {kind: FakeCollection(kind) for kind in ("positions", "vehicles", "commands")}

    def collection(self, kind: str) -> FakeCollection:
        return self.collections[kind]

    @property
    def positions(self) -> FakeCollection:
        return self.collections["positions"]

    @property
    def vehicles(self) -> FakeCollection:
        return self.collections["vehicles"]



class KillableStore(StoreProcess):
    """A secantusd-py child of this test only: killed (SIGKILL) and restarted on the same port and data."""

    def __init__(self) -> None:
        super().__init__(start=False, prefix="waygps-outage-")
