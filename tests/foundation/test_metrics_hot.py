"""The per-report counters: plain numbers, exported in the Prometheus text format like any counter."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from waygps.metrics import HotCounter


def test_a_hot_counter_reads_like_a_prometheus_counter() -> None:
    registry = CollectorRegistry()
    counter = HotCounter("waygps_test_frames", "Frames for the test", ["driver"], registry=registry)
    counter.labels("gv50").inc()
    counter.labels("gv50").inc(2)
    counter.labels("teltonika").inc()
    assert registry.get_sample_value("waygps_test_frames_total", {"driver": "gv50"}) == 3.0
    text = generate_latest(registry).decode()
    assert "# TYPE waygps_test_frames_total counter" in text
    assert 'waygps_test_frames_total{driver="teltonika"} 1.0' in text


def test_a_hot_counter_refuses_what_a_counter_refuses() -> None:
    registry = CollectorRegistry()
    counter = HotCounter("waygps_test_acks", "Acks for the test", ["driver"], registry=registry)
    with pytest.raises(ValueError):
        counter.labels("gv50").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("gv50", "extra")
    with pytest.raises(ValueError):  # one name, one collector
        HotCounter("waygps_test_acks", "again", ["driver"], registry=registry)
