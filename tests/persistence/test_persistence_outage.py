"""The store killed in the middle of a stream, then restarted: nothing lost, nothing twice, no early ack."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

import persistence_support
from persistence_support import IMEI, KillableStore, config, sample
from waygps.bus import EventBus
from waygps.events import Position
from waygps.persistence import PersistenceService
from waygps.store.connection import MongoStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPORTS = 600
WINDOW = 10  # reports a device sends before it waits for acknowledgements
RESEND_AFTER = 0.2


class Device:
    """A tracker: sends its reports in order, keeps every unacknowledged one and sends it again."""

    def __init__(self, sink: PersistenceService, reports: list[Position], stored: Any) -> None:
        self.sink = sink
        self.unsent: deque[Position] = deque(reports)
        self.total = len(reports)
        self.stored = stored
        self.in_flight = 0
        self.acked: set[str] = set()
        self.sends = 0
        self.refusals = 0
        self.early_acks: list[str] = []
        self.done: Deferred = Deferred()
        self.on_ack: Any = None

    def pump(self) -> None:
        while self.in_flight < WINDOW and self.unsent:
            report = self.unsent.popleft()
            self.in_flight += 1
            self.sends += 1
            d = self.sink.deliver([report])
            d.addCallbacks(self._acked, self._refused, callbackArgs=(report,), errbackArgs=(report,))

    def _acked(self, _: Any, report: Position) -> None:
        self.in_flight -= 1
        # The acknowledgement is what lets a real device delete its copy: it must be in MongoDB now.
        if self.stored.find_one({"_id": report.document_id}) is None:
            self.early_acks.append(report.key)
        self.acked.add(report.key)
        if self.on_ack is not None:
            self.on_ack(len(self.acked))
        if len(self.acked) == self.total and not self.done.called:
            self.done.callback(None)
        else:
            reactor.callLater(0, self.pump)

    def _refused(self, failure: Any, report: Position) -> None:
        self.in_flight -= 1
        self.refusals += 1
        reactor.callLater(RESEND_AFTER, self._again, report)

    def _again(self, report: Position) -> None:
        if report.key not in self.acked:
            self.unsent.append(report)  # replayed later, like a +BUFF report
        self.pump()


@pytest.fixture
def store() -> Iterator[KillableStore]:
    s = KillableStore()
    s.start()
    s.wait()
    yield s
    s.close()


@pytest_twisted.inlineCallbacks
def test_store_killed_mid_stream_every_report_is_stored_once_and_none_acknowledged_early(
        store: KillableStore) -> None:
    cfg = config(database="outage", uri=store.uri, batch_size=25, batch_interval_ms=5.0, store_timeout=1.0,
                 reconnect_max_delay=0.5)
    mongo = MongoStore(cfg.mongodb, store.uri)
    mongo.connect()
    bus = EventBus()
    client = pymongo.MongoClient(store.uri, serverSelectionTimeoutMS=10000)
    stored = client["outage"]["DadosVeiculo"]
    published: list[str] = []
    shown_unstored: list[str] = []

    def on_event(event: Any) -> None:
        if isinstance(event, Position):
            if stored.find_one({"_id": event.document_id}) is None:
                shown_unstored.append(event.key)
            published.append(event.document_id)

    bus.subscribe(on_event)
    service = PersistenceService(mongo, cfg, bus, reactor)
    yield service.prepare()
    service.startService()
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    reports = [persistence_support.position(key=f"{n:04X}", base=start, minutes=n / 10, lat=-17.0 - n / 10000)
               for n in range(REPORTS)]
    device = Device(service, reports, stored)
    timeouts_before = sample("waygps_store_failures_total", reason="timeout")
    outage: dict[str, Any] = {}

    def maybe_kill(acked: int) -> None:
        if acked >= REPORTS // 3 and "killed" not in outage:
            outage["killed"] = acked
            store.kill()
            outage["back"] = deferLater(3.0).addCallback(lambda _: restart())

    def restart() -> Deferred:
        store.start()
        return deferToThread(store.wait)

    device.on_ack = maybe_kill
    device.pump()
    yield device.done
    yield outage["back"]
    yield service.flush()
    yield service.stopService()
    yield mongo.close()

    assert outage["killed"] < REPORTS
    assert device.refusals > 0 and sample("waygps_store_failures_total", reason="timeout") > timeouts_before
    assert device.early_acks == []
    ids = sorted(d["_id"] for d in stored.find({}, {"_id": 1}))
    assert ids == sorted(r.document_id for r in reports)  # each report exactly once
    assert shown_unstored == []
    assert set(published) == set(ids)  # and every one reached the bus
    vehicle = client["outage"]["Veiculo"].find_one({"IMEI": IMEI})
    assert vehicle["dataDevice"] == reports[-1].device_time.replace(tzinfo=None, microsecond=(
        reports[-1].device_time.microsecond // 1000) * 1000)
    print(f"\n{REPORTS} reports, {device.sends} sends, {device.refusals} refused during the outage, "
          f"store killed after {outage['killed']} acknowledgements, published {len(published)} times")
    client.close()


def deferLater(seconds: float) -> Deferred:
    d: Deferred = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
