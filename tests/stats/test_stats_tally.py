"""The pure parts of the statistics: tally, buckets and percentiles, flush building, the daily row."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from waygps.stats.histogram import EDGES_MS, bucket_of, percentile
from waygps.stats.report import daily, day_filter, render_table
from waygps.stats.tally import Tally, safe_key
from waygps.stats.writer import flushes_of, update_of

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
MIDNIGHT_BEFORE = datetime(2026, 11, 28, 23, 59, 59, tzinfo=timezone.utc)
AFTER = datetime(2026, 11, 29, 0, 0, 1, tzinfo=timezone.utc)


def test_buckets_and_percentiles():
    assert bucket_of(0) == "le_1" and bucket_of(1) == "le_1" and bucket_of(1.5) == "le_2"
    assert bucket_of(10 ** 12) == "inf"
    # 100 samples: 94 at 3 ms, 6 at 700 ms -> p95 falls in the 1000 ms bucket, the mean is not.
    buckets = {bucket_of(3): 94, bucket_of(700): 6}
    assert percentile(buckets, 0.95) == 1000
    assert percentile(buckets, 0.50) == 5
    assert percentile({}, 0.95) is None
    assert percentile({"inf": 3}, 0.95) == EDGES_MS[-1]
    # Bucket counts merge by addition: two halves give the same percentile as the whole.
    a, b = {bucket_of(3): 50, bucket_of(700): 3}, {bucket_of(3): 44, bucket_of(700): 3}
    merged = {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}
    assert percentile(merged, 0.95) == percentile(buckets, 0.95)


def test_tally_splits_by_listener_and_utc_day():
    tally = Tally()
    tally.add("gv50", MIDNIGHT_BEFORE, "received", 3)
    tally.add("gv50", AFTER, "received")
    tally.reason("gv50", NOON, "rejected", "bad.checksum$x")
    tally.device("teltonika", NOON, "1")
    tally.device("teltonika", NOON, "1")
    tally.latency("gv50", NOON, "store_latency", 0.004)
    assert tally.counts[("gv50", "2026-11-28")]["received"] == 3
    assert tally.counts[("gv50", "2026-11-29")]["received"] == 1
    assert tally.counts[("gv50", "2026-11-28")]["rejected_by.bad_checksum_x"] == 1
    assert tally.devices[("teltonika", "2026-11-28")] == {"1"}
    assert tally.counts[("gv50", "2026-11-28")]["store_latency.buckets.le_5"] == 1
    assert safe_key("x" * 500) == "x" * 64 and safe_key("") == "unknown"


def test_a_flush_is_an_idempotent_update():
    tally = Tally()
    tally.add("gv50", NOON, "stored", 5)
    tally.device("gv50", NOON, "862894020180553")
    [flush] = flushes_of(tally, "host/run1", 7)
    assert flush.id == "host/run1/7" and flush.document_id == "2026-11-28|gv50"
    query, update = update_of(flush, NOON)
    assert query == {"_id": "2026-11-28|gv50", "applied": {"$ne": "host/run1/7"}}
    assert update["$inc"] == {"stored": 5}
    assert update["$push"] == {"applied": "host/run1/7"}
    assert update["$addToSet"] == {"devices": {"$each": ["862894020180553"]}}
    assert update["$setOnInsert"]["day"] == "2026-11-28"


def test_daily_row_and_table():
    doc = {"day": "2026-11-28", "listener": "gv50", "devices": ["1", "2"], "received": 10, "stored": 9,
           "duplicates": 1, "rejected": 1, "rejected_by": {"bad_checksum": 1}, "commands": {"sent": 2},
           "store_latency": {"count": 4, "sum_ms": 40.0, "buckets": {"le_10": 3, "le_50": 1}}}
    row = daily(doc)
    assert row["devices_connected"] == 2 and row["commands"] == {"sent": 2, "confirmed": 0, "failed": 0}
    assert row["store_latency"] == {"count": 4, "mean_ms": 10.0, "p95_ms": 50.0}
    assert row["device_delay"] == {"count": 0, "mean_ms": None, "p95_ms": None}
    text = render_table([row])
    assert text.splitlines()[0].split()[:4] == ["day", "listener", "devices", "received"]
    assert text.splitlines()[1].split()[:4] == ["2026-11-28", "gv50", "2", "10"]
    assert day_filter("2026-11-01", None, "gv50") == {"day": {"$gte": "2026-11-01"}, "listener": "gv50"}


@pytest.mark.parametrize("reason", ["a.b", "$set", "x y"])
def test_reasons_cannot_make_bad_field_names(reason):
    assert "." not in safe_key(reason) and "$" not in safe_key(reason)


def test_the_collector_counts_each_report_on_the_utc_day_it_happened() -> None:
    from datetime import timedelta

    from twisted.internet.task import Clock

    from waygps.bus import EventBus
    from waygps.config import StatsConfig
    from waygps.events import Position
    from waygps.stats.collector import StatsCollector

    clock = Clock()
    collector = StatsCollector(StatsConfig(), None, EventBus(), clock, "test")

    def report(at: datetime, key: str) -> Position:
        return Position(imei="862894020180553", protocol="gv50", device_time=at - timedelta(seconds=2),
                        server_time=at, event="GTFRI", key=key, valid=True, latitude=-17.7, longitude=-63.1)

    for at, key in ((MIDNIGHT_BEFORE, "a"), (AFTER, "b"), (AFTER + timedelta(days=3), "c")):
        clock.advance(at.timestamp() - clock.seconds())
        collector.received("gv50", [report(at, key)])
        clock.advance(0.25)  # stored a quarter of a second later
        collector.on_event(report(at, key))
    counts = collector.tally.counts
    assert sorted(counts) == [("gv50", "2026-11-28"), ("gv50", "2026-11-29"), ("gv50", "2026-12-02")]
    for key in counts:
        assert counts[key]["received"] == counts[key]["stored"] == 1
        assert counts[key]["store_latency.count"] == 1 and counts[key]["store_latency.buckets.le_500"] == 1
        assert counts[key]["device_delay.buckets.le_2000"] == 1


def test_reports_the_quality_checks_store_as_invalid_count_as_flagged_by_their_reason() -> None:
    from twisted.internet.task import Clock

    from waygps.bus import EventBus
    from waygps.config import StatsConfig
    from waygps.events import Position
    from waygps.quality import assess
    from waygps.stats.collector import StatsCollector

    clock = Clock()
    clock.advance(NOON.timestamp())
    collector = StatsCollector(StatsConfig(), None, EventBus(), clock, "test")

    def stored(key: str, **values: object) -> Position:
        fields: dict = dict(imei="862894020180553", protocol="gv50", device_time=NOON, server_time=NOON,
                            event="GTFRI", key=key, valid=True, latitude=-17.7, longitude=-63.1, hdop=1.0)
        fields.update(values)
        return assess(Position(**fields), NOON)[0]  # as the persistence service stores and publishes it

    for event in (stored("ok"), stored("zero", latitude=0.0, longitude=0.0), stored("fast", speed=900.0),
                  stored("nofix", valid=False)):
        collector.on_event(event)
    [counts] = collector.tally.counts.values()
    assert counts["stored"] == 4
    assert counts["flagged"] == 2  # a device's own "no fix" is not a flag raised by WayGPS
    assert counts["flagged_by.zero_coordinates"] == 1 and counts["flagged_by.impossible_speed"] == 1


def test_latency_histogram_fields_and_bounds():
    from collections import defaultdict

    from waygps.stats.tally import add_latency

    counts: dict = defaultdict(float)
    add_latency(counts, "x", 0.0015)  # 1.5 ms
    add_latency(counts, "x", -3.0)  # a clock step backwards counts as 0
    add_latency(counts, "x", float("nan"))  # never poisons the sum
    add_latency(counts, "x", 10.0 ** 9)
    assert counts["x.count"] == 4 and counts["x.sum_ms"] == 1.5 + 10.0 ** 12
    assert counts["x.buckets.le_2"] == 1 and counts["x.buckets.le_1"] == 2 and counts["x.buckets.inf"] == 1
