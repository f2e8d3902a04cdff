"""``[runtime]``: the collector tuning the server process applies (and only the server process)."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

from waygps.config import RuntimeConfig, build
from waygps.runtime import OLDER_PASSES, freeze_startup, tune_collector
from waygps.service import build_service


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_young_threshold_is_raised_and_zero_keeps_pythons_own(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    assert tune_collector(RuntimeConfig(gc_threshold=0)) == (700, 10, 10)
    assert tune_collector(RuntimeConfig()) == (10_000, OLDER_PASSES, OLDER_PASSES)
    assert build({"runtime": {"gc_threshold": 2500}}).runtime.gc_threshold == 2500


def test_freezing_moves_what_is_alive_out_of_the_collections(collector: None) -> None:
    assert freeze_startup(RuntimeConfig(gc_freeze=False)) == 0
    assert gc.get_freeze_count() == 0
    alive = [[n] for n in range(1000)]
    frozen = freeze_startup(RuntimeConfig())
    assert frozen >= len(alive) and gc.get_freeze_count() >= len(alive)
    assert not any(o is alive for o in gc.get_objects())  # no longer tracked by the passes


def test_a_service_built_as_a_library_leaves_the_collector_alone(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    service = build_service(build({"mongodb": {"uri": "mongodb://127.0.0.1:1"}}), drivers={})
    assert service.tune_runtime is False
    assert gc.get_threshold() == (700, 10, 10)
