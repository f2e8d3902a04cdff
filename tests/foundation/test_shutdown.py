"""Stopping while MongoDB is unreachable ends, and acknowledges nothing that was not stored."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from tests.conftest import StoreProcess, server_config
from waygps.drivers import find_drivers
from waygps.events import Position
from waygps.service import WayGPSService


@pytest_twisted.inlineCallbacks
def test_stop_finishes_when_the_store_is_gone() -> None:
    store = StoreProcess()
    try:
        config = server_config(store.uri, "shutdown", [{"driver": "gv50"}],
                               persistence={"store_timeout": 2.0, "reconnect_max_delay": 1.0})
        service = WayGPSService(config, find_drivers(), reactor)
        service.startService()
        yield service.started
        store.process.kill()
        store.process.wait()
        now = datetime.now(timezone.utc)
        outcome: list[Any] = []
        pending = service.persistence.deliver([Position(
            imei="862894020180553", protocol="gv50", device_time=now, server_time=now, event="GTFRI", key="k",
            valid=True, latitude=1.0, longitude=2.0)])
        pending.addBoth(outcome.append)
        stopped = service.stopService()
        timeout = reactor.callLater(30, stopped.cancel)
        yield stopped
        assert timeout.active(), "stopService did not finish within 30 s"
        timeout.cancel()
        assert len(outcome) == 1 and outcome[0] is not None, "an unstored report must not be acknowledged"
    finally:
        if store.process.poll() is None:
            store.process.kill()
        store.stop()
