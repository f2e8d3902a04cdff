"""The collector's imei -> listener map: the last connection wins, the least recently connected go first."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from twisted.internet.task import Clock

from waygps.bus import EventBus
from waygps.config import StatsConfig
from waygps.events import DeviceConnected
from waygps.stats import collector as collector_module
from waygps.stats.collector import StatsCollector

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def connected(imei: str, listener: str) -> DeviceConnected:
    return DeviceConnected(imei=imei, protocol="gv50", server_time=NOON, peer="p", transport="tcp",
                           listener=listener)


def test_a_device_counts_on_the_listener_it_last_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "MAX_DEVICES", 2)
    c = StatsCollector(StatsConfig(), store=None, publisher=EventBus(), reactor=Clock(), instance_id="i")
    c.on_event(connected("a", "gv50-tcp"))
    c.on_event(connected("b", "gv50-tcp"))
    c.on_event(connected("a", "gv50-udp"))  # "a" is now the most recent
    c.on_event(connected("c", "gv50-tcp"))  # over the limit: "b", the least recently connected, goes
    assert c.listener_of("a", "gv50") == "gv50-udp"
    assert c.listener_of("c", "gv50") == "gv50-tcp"
    assert c.listener_of("b", "gv50") == "gv50"  # forgotten: counted under its protocol's name
    assert list(c._listeners) == ["a", "c"]
