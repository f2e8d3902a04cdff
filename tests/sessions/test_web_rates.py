"""The last-minute gauges behind `waygps status`: reports per second and store batch latency."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sessions_fakes import sample
from waygps import metrics
from waygps.web.metrics import RecentRates


def rate() -> float:
    return sample("waygps_reports_stored_per_second")


def latency() -> float:
    return sample("waygps_store_batch_seconds_recent")


def test_reports_per_second_over_the_last_minute() -> None:
    clock = Clock()
    clock.advance(1000)
    rates = RecentRates(clock, window=60, step=5)
    rates.start()
    try:
        # 10 reports per 5 s for a minute: 2/s
        for _ in range(12):
            metrics.REPORTS_STORED.labels("rate-test").inc(10)
            clock.advance(5)
        assert rate() == pytest.approx(2.0)
        # then silence: the rate decays to 0 once the busy minute has left the window
        for _ in range(6):
            clock.advance(5)
        assert rate() == pytest.approx(1.0)
        for _ in range(6):
            clock.advance(5)
        assert rate() == 0
    finally:
        rates.stop()


def test_the_rate_before_a_full_minute_uses_the_time_so_far() -> None:
    clock = Clock()
    rates = RecentRates(clock, window=60, step=5)
    rates.start()
    try:
        metrics.REPORTS_STORED.labels("rate-test").inc(30)
        clock.advance(5)
        metrics.REPORTS_STORED.labels("rate-test").inc(30)
        clock.advance(5)
        assert rate() == pytest.approx(6.0)
    finally:
        rates.stop()


def test_mean_store_latency_of_the_batches_in_the_last_minute() -> None:
    clock = Clock()
    rates = RecentRates(clock, window=60, step=5)
    rates.start()
    try:
        clock.advance(5)
        assert latency() == 0  # no batch: 0, not a division by zero
        metrics.STORE_BATCH_SECONDS.observe(0.010)
        metrics.STORE_BATCH_SECONDS.observe(0.030)
        clock.advance(5)
        assert latency() == pytest.approx(0.020)
        clock.advance(65)
        assert latency() == 0
    finally:
        rates.stop()


def test_stop_stops_sampling() -> None:
    clock = Clock()
    rates = RecentRates(clock, step=5)
    rates.start()
    rates.stop()
    assert clock.getDelayedCalls() == []
