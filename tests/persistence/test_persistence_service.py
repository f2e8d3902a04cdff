"""The batching writer's timing and bookkeeping, on a Clock with hand-answered writes."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from persistence_support import IMEI, OTHER, T0, FakeStore, config, position, sample
from waygps.bus import EventBus
from waygps.events import Alarm, CommandAck, DeviceConnected, DeviceDisconnected, Heartbeat
from waygps.persistence import (
    PersistenceService, QueueFull, ReportRejected, ServiceStopped, StoreUnavailable, VEHICLE_LAG_FACTOR, VEHICLE_MIN_LAG,
)


class Harness:
    def __init__(self, **persistence: Any) -> None:
        persistence.setdefault("batch_size", 3)
        persistence.setdefault("batch_interval_ms", 20.0)
        persistence.setdefault("store_timeout", 5.0)
        persistence.setdefault("reconnect_max_delay", 1.0)
        self.clock = Clock()
        self.clock.advance(T0.timestamp())  # the reports of persistence_support are from T0 on
        self.store = FakeStore()
        self.bus = EventBus()
        self.published: list[Any] = []
        self.bus.subscribe(self.published.append)
        self.service = PersistenceService(self.store, config(**persistence), self.bus, self.clock)
        self.service.startService()

    def deliver(self, *events: Any) -> dict[str, Any]:
        """The outcome of ``deliver`` as it settles: {'ok': True} or {'error': exception}."""
        outcome: dict[str, Any] = {}
        d = self.service.deliver(list(events))
        d.addCallbacks(lambda _: outcome.setdefault("ok", True), lambda f: outcome.setdefault("error", f.value))
        return outcome

    @property
    def inserts(self) -> list:
        return [c for c in self.store.positions.calls if c.method == "insert_many"]


def ids(call: Any) -> list[str]:
    return [doc["_id"] for doc in call.payload]


def test_a_full_batch_is_sent_at_once_and_the_rest_waits_for_the_interval() -> None:
    h = Harness(batch_size=3)
    outcomes = [h.deliver(position(key=f"k{n}", minutes=n)) for n in range(7)]
    assert len(h.inserts) == 1 and len(h.inserts[0].payload) == 3
    assert h.inserts[0].ordered is False
    h.inserts[0].succeed()
    assert [bool(o) for o in outcomes] == [True] * 3 + [False] * 4
    assert len(h.inserts) == 2 and len(h.inserts[1].payload) == 3  # 4 were waiting: a full batch at once
    h.inserts[1].succeed()
    assert len(h.inserts) == 2  # the last one waits for batch_interval_ms
    h.clock.advance(0.019)
    assert len(h.inserts) == 2
    h.clock.advance(0.002)
    assert len(h.inserts) == 3 and len(h.inserts[2].payload) == 1
    h.inserts[2].succeed()
    assert all(o == {"ok": True} for o in outcomes)
    assert h.service.pending == 0


def test_one_deliver_call_is_never_split_across_batches() -> None:
    h = Harness(batch_size=3)
    h.deliver(position(key="a"), position(key="b"))
    h.deliver(position(key="c"), position(key="d"))
    h.clock.advance(0.02)
    assert [len(c.payload) for c in h.inserts] == [2]
    h.inserts[0].succeed()
    assert [len(c.payload) for c in h.inserts] == [2, 2]


def test_reports_are_published_before_the_device_is_acknowledged_and_only_after_storing() -> None:
    h = Harness(batch_size=1)
    seen_at_ack: list[int] = []
    report = position()
    d = h.service.deliver([report, Alarm(imei=IMEI, protocol="gv50", server_time=report.server_time,
                                         alarm="sos", position_id=report.document_id)])
    d.addCallback(lambda _: seen_at_ack.append(len(h.published)))
    assert h.published == [] and seen_at_ack == []
    h.inserts[0].succeed()
    assert seen_at_ack == [2]
    assert [type(e).__name__ for e in h.published] == ["Position", "Alarm"]


def test_the_next_batch_goes_to_the_store_before_the_stored_one_is_announced() -> None:
    # The store inserts the next batch while this service publishes and acknowledges the last one.
    h = Harness(batch_size=1)
    sent_when_published: list[int] = []
    h.bus.subscribe(lambda event: sent_when_published.append(len(h.inserts)))
    first = h.deliver(position(key="a"))
    second = h.deliver(position(key="b", minutes=1))
    assert len(h.inserts) == 1
    h.inserts[0].succeed()
    assert sent_when_published == [2] and first == {"ok": True} and second == {}
    h.inserts[1].succeed()
    assert second == {"ok": True}


def test_a_store_answering_at_once_still_finishes_batches_in_order() -> None:
    # The second and third batches are answered synchronously, inside the announcement of the first.
    h = Harness(batch_size=1)
    events: list[str] = []
    for key in "abc":
        d = h.service.deliver([position(key=key, minutes=ord(key))])
        d.addCallback(lambda _, key=key: events.append(f"ack {key}"))
    original = h.store.positions.insert_many

    def at_once(documents: list, ordered: bool = True) -> Any:
        d = original(documents, ordered)
        h.store.positions.calls[-1].succeed()
        return d

    h.store.positions.insert_many = at_once  # type: ignore[method-assign]
    h.bus.subscribe(lambda event: events.append(f"published {event.key}"))
    h.inserts[0].succeed()
    assert events == ["published a", "ack a", "published b", "ack b", "published c", "ack c"]
    assert h.service.pending == 0


def test_events_without_a_report_are_published_and_answered_at_once() -> None:
    h = Harness()
    t = position().server_time
    ack = CommandAck(imei=IMEI, protocol="gv50", server_time=t, success=True, response="+ACK:GTOUT")
    assert h.deliver(Heartbeat(imei=IMEI, protocol="gv50", server_time=t), ack) == {"ok": True}
    assert [type(e).__name__ for e in h.published] == ["Heartbeat", "CommandAck"]
    assert h.inserts == []
    # the heartbeat reaches Veiculo: the report lane is idle, so at once
    assert len(h.store.vehicles.calls) == 1


def test_session_events_are_written_but_not_published_again() -> None:
    h = Harness()
    t = position().server_time
    connected = DeviceConnected(imei=IMEI, protocol="gv50", server_time=t, peer="1.2.3.4:5", transport="tcp",
                                listener="gv50-tcp-5001")
    assert h.deliver(connected) == {"ok": True}
    assert h.published == []
    [write] = h.store.vehicles.calls
    [update] = write.payload
    assert update._doc[0]["$set"]["online"] == {"$literal": True}


def test_a_duplicate_counts_as_stored_but_is_not_published_twice() -> None:
    h = Harness(batch_size=2)
    before = sample("waygps_duplicate_reports_total", driver="gv50")
    stored_before = sample("waygps_reports_stored_total", driver="gv50")
    outcome = h.deliver(position(key="old"), position(key="new"))
    h.inserts[0].fail(BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000"}],
                                      "writeConcernErrors": [], "nInserted": 1}))
    assert outcome == {"ok": True}
    assert sample("waygps_duplicate_reports_total", driver="gv50") == before + 1
    assert sample("waygps_reports_stored_total", driver="gv50") == stored_before + 1
    assert [p.key for p in h.published] == ["new"]


def test_a_report_and_its_resend_in_one_batch_are_published_once() -> None:
    # The device re-sent before its first copy was acknowledged: both copies share a batch, the
    # first is inserted and the second is the duplicate. The report is new: it is published, once.
    h = Harness(batch_size=2)
    first = h.deliver(position(key="same"))
    again = h.deliver(position(key="same"))
    h.inserts[0].fail(BulkWriteError({"writeErrors": [{"index": 1, "code": 11000, "errmsg": "E11000"}],
                                      "writeConcernErrors": [], "nInserted": 1}))
    assert first == {"ok": True} and again == {"ok": True}
    assert [p.key for p in h.published] == ["same"]


def test_a_document_refused_for_good_fails_only_its_delivery() -> None:
    h = Harness(batch_size=2)
    bad = h.deliver(position(key="bad"))
    good = h.deliver(position(imei=OTHER, key="good"))
    h.inserts[0].fail(BulkWriteError({"writeErrors": [{"index": 0, "code": 121, "errmsg": "failed validation"}],
                                      "writeConcernErrors": [], "nInserted": 1}))
    assert isinstance(bad["error"], ReportRejected)
    assert good == {"ok": True}
    assert [p.key for p in h.published] == ["good"]
    assert len(h.inserts) == 1  # not retried


def test_a_store_outage_is_retried_with_backoff_and_resumes_by_itself() -> None:
    h = Harness(batch_size=1, store_timeout=30.0, reconnect_max_delay=0.5)
    outcome = h.deliver(position())
    delays = []
    for _ in range(5):
        h.inserts[-1].fail(AutoReconnect("connection refused"))
        [retry] = [c for c in h.clock.getDelayedCalls() if c.func.__name__ == "_retry_due"]
        delays.append(round(retry.getTime() - h.clock.seconds(), 6))
        sent = len(h.inserts)
        h.clock.advance(retry.getTime() - h.clock.seconds())
        assert len(h.inserts) == sent + 1
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]  # doubling, capped at reconnect_max_delay
    assert outcome == {}
    h.inserts[-1].succeed()
    assert outcome == {"ok": True}
    assert len({tuple(ids(c)) for c in h.inserts}) == 1  # the same batch every time


def test_deliveries_fail_after_store_timeout_and_a_late_success_fires_nothing_twice() -> None:
    h = Harness(batch_size=1, store_timeout=2.0)
    first = h.deliver(position(key="a"))
    second = h.deliver(position(key="b"))  # queued behind the batch in flight
    h.clock.advance(1.9)
    assert first == {} and second == {}
    h.clock.advance(0.2)
    assert isinstance(first["error"], StoreUnavailable)
    assert isinstance(second["error"], StoreUnavailable)
    assert h.service.pending == 1  # the queued one is forgotten; the one in flight stays until answered
    h.inserts[0].succeed()  # MongoDB stored it after all
    assert [p.key for p in h.published if hasattr(p, "key")] == ["a"]  # it is stored, so it may be shown
    assert isinstance(first["error"], StoreUnavailable)
    assert len(h.inserts) == 1  # "b" was answered already: nothing left to send
    assert h.service.pending == 0


def test_a_failed_batch_whose_devices_were_all_answered_is_dropped() -> None:
    h = Harness(batch_size=1, store_timeout=1.0, reconnect_max_delay=4.0)
    outcome = h.deliver(position())
    for wait in (0.1, 0.2, 0.4):  # attempts at 0.1, 0.3, 0.7
        h.inserts[-1].fail(AutoReconnect("down"))
        h.clock.advance(wait)
    h.inserts[-1].fail(AutoReconnect("down"))  # next attempt due at 1.5
    assert len(h.inserts) == 4
    h.clock.advance(0.3)
    assert isinstance(outcome["error"], StoreUnavailable)
    h.clock.advance(0.5)
    assert h.service.pending == 0
    h.clock.advance(10)
    assert len(h.inserts) == 4


def test_back_pressure_pauses_readers_bounds_the_queue_and_resumes_below_half() -> None:
    h = Harness(batch_size=5, queue_limit=10, store_timeout=60.0)
    readers = [StringTransport() for _ in range(3)]
    for reader in readers:
        h.service.watch(reader)
    outcomes = [h.deliver(position(key=f"k{n}")) for n in range(11)]
    assert all(r.producerState == "paused" for r in readers)
    late = StringTransport()
    h.service.watch(late)  # a device that connects now is paused at once
    assert late.producerState == "paused"
    more = [h.deliver(position(key=f"m{n}")) for n in range(15)]
    refused = [o for o in more if o and isinstance(o.get("error"), QueueFull)]
    assert h.service.pending == 20  # twice queue_limit, never more
    assert len(refused) == 6
    h.service.unwatch(readers[2])
    for _ in range(2):
        h.inserts[-1].succeed()
    assert h.service.pending == 10 and readers[0].producerState == "paused"
    h.inserts[-1].succeed()
    assert h.service.pending == 5
    assert [r.producerState for r in readers] == ["producing", "producing", "paused"]
    assert late.producerState == "producing"
    assert sum(1 for o in outcomes + more if o == {"ok": True}) == 15


def test_stop_flushes_the_queue_without_waiting_for_the_interval() -> None:
    h = Harness(batch_size=100, batch_interval_ms=1000.0)
    outcome = h.deliver(position())
    stopped: list[Any] = []
    h.service.stopService().addBoth(stopped.append)
    assert len(h.inserts) == 1 and stopped == []
    h.inserts[0].succeed()
    assert outcome == {"ok": True}
    [vehicles] = h.store.vehicles.calls
    assert stopped == []  # Veiculo too
    vehicles.succeed()
    assert stopped == [None]
    assert isinstance(h.deliver(position(key="late"))["error"], ServiceStopped)


def test_stop_gives_up_after_store_timeout() -> None:
    h = Harness(store_timeout=3.0)
    outcome = h.deliver(position())
    stopped: list[Any] = []
    h.service.stopService().addBoth(stopped.append)
    h.inserts[0].fail(AutoReconnect("down"))
    h.clock.advance(3.0)
    assert len(stopped) == 1 and stopped[0].check(StoreUnavailable)
    assert outcome and "error" in outcome


def test_vehicle_updates_coalesce_while_reports_keep_the_store_busy() -> None:
    h = Harness(batch_size=2)
    h.deliver(position(key="a", minutes=1), position(imei=OTHER, key="b", minutes=1))
    h.deliver(position(key="c", minutes=2))
    h.inserts[0].succeed()  # a report waits: Veiculo can wait
    h.clock.advance(0.02)
    h.deliver(position(key="d", minutes=3))
    h.inserts[1].succeed()
    h.clock.advance(0.02)
    h.deliver(position(key="e", minutes=4))
    assert len(h.inserts) == 3 and h.store.vehicles.calls == []
    h.clock.advance(VEHICLE_MIN_LAG - 0.04)  # VEHICLE_MIN_LAG after the first delta
    [write] = h.store.vehicles.calls
    assert sorted(op._filter["IMEI"] for op in write.payload) == sorted([IMEI, OTHER])
    stage = next(op for op in write.payload if op._filter["IMEI"] == IMEI)._doc[0]["$set"]
    assert stage["dataDevice"]["$cond"][1] == {"$literal": position(minutes=2).device_time}


def test_a_lane_that_empties_after_every_batch_does_not_make_every_vehicle_write_urgent() -> None:
    # A closed-loop fleet: each batch's devices answer only after their acks, so the report lane is
    # empty after every batch. Veiculo still takes at most 1 / VEHICLE_LAG_FACTOR of the store's time.
    h = Harness(batch_size=1)
    h.deliver(position(key="a", minutes=1))
    h.inserts[0].succeed()  # idle store: Veiculo follows at once
    [first] = h.store.vehicles.calls
    h.clock.advance(0.5)  # the vehicle write took 0.5 s
    first.succeed()
    h.deliver(position(key="b", minutes=2))
    h.inserts[1].succeed()
    assert h.store.vehicles.calls == [first]
    h.clock.advance(VEHICLE_LAG_FACTOR * 0.5 - 0.01)
    assert h.store.vehicles.calls == [first]
    h.clock.advance(0.02)
    assert len(h.store.vehicles.calls) == 2


def test_a_failed_vehicle_write_is_retried_with_what_came_since() -> None:
    h = Harness(batch_size=1)
    h.deliver(position(key="a", minutes=1))
    h.inserts[0].succeed()
    [first] = h.store.vehicles.calls
    h.deliver(position(key="b", minutes=2))
    h.inserts[1].succeed()
    first.fail(AutoReconnect("down"))
    h.clock.advance(0.1)
    retry = h.store.vehicles.calls[-1]
    assert retry is not first and len(retry.payload) == 1
    stage = retry.payload[0]._doc[0]["$set"]
    assert stage["dataDevice"]["$cond"][1] == {"$literal": position(minutes=2).device_time}


def disconnected() -> DeviceDisconnected:
    return DeviceDisconnected(imei=IMEI, protocol="gv50", server_time=position().server_time, peer="p",
                              reason="closed", listener="l")


def test_an_older_report_stored_after_a_disconnection_leaves_the_device_offline() -> None:
    h = Harness(batch_size=1)
    h.deliver(position())  # in flight
    h.deliver(disconnected())
    h.inserts[0].succeed()
    ops = [op for call in h.store.vehicles.calls for op in call.payload]
    assert [op._doc[0]["$set"]["online"] for op in ops] == [{"$literal": False}]


def test_an_older_report_stored_after_the_disconnection_was_written_does_not_touch_online() -> None:
    h = Harness(batch_size=1)
    h.deliver(position())  # in flight
    h.deliver(disconnected())
    h.clock.advance(VEHICLE_MIN_LAG)  # the report lane is busy: Veiculo is written after the lag
    [first] = h.store.vehicles.calls
    assert first.payload[0]._doc[0]["$set"]["online"] == {"$literal": False}
    first.succeed()
    h.inserts[0].succeed()
    second = h.store.vehicles.calls[-1]
    assert second is not first and "online" not in second.payload[0]._doc[0]["$set"]


def test_the_write_concern_is_the_configured_one_and_journaled() -> None:
    h = Harness(batch_size=1)
    h.deliver(position())
    assert h.store.positions.write_concern.document == {"w": "majority", "j": True}
    h = Harness(batch_size=1, write_concern="2")
    h.deliver(position())
    assert h.store.positions.write_concern.document == {"w": 2, "j": True}


@pytest.mark.parametrize("reason", ["zero", "future"])
def test_flagged_reports_are_counted_and_stored_invalid(reason: str) -> None:
    h = Harness(batch_size=1)
    report = position(lat=0.0, lon=0.0) if reason == "zero" else position(minutes=30)
    label = {"zero": "zero_coordinates", "future": "time_in_future"}[reason]
    before = sample("waygps_reports_flagged_total", driver="gv50", reason=label)
    h.deliver(report)
    [doc] = h.inserts[0].payload
    assert doc["valid"] is False and doc["attributes"]["qualityFlag"] == label and "location" not in doc
    assert sample("waygps_reports_flagged_total", driver="gv50", reason=label) == before + 1
