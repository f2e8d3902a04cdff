"""The ``[history]`` and ``[stats]`` sections: defaults, and bad values named by their key."""

from __future__ import annotations

import pytest

from waygps.config import ConfigError, build
from waygps.history.trips import TripRules


def test_defaults_and_rules():
    config = build({})
    assert config.history.min_stop_seconds == 300 and config.stats.flush_interval == 60
    assert config.stats.collection == "EstadisticasRecepcion"
    assert TripRules.from_config(config.history) == TripRules()
    custom = build({"history": {"moving_speed_kmh": 3, "use_ignition": False}})
    assert TripRules.from_config(custom.history) == TripRules(moving_speed_kmh=3.0, use_ignition=False)


@pytest.mark.parametrize("raw, message", [
    ({"history": {"moving_speed_kmh": 0}}, "history.moving_speed_kmh: "),
    ({"history": {"max_gap_seconds": -1}}, "history.max_gap_seconds: "),
    ({"history": {"batch_size": 0}}, "history.batch_size: "),
    ({"history": {"use_ignition": "yes"}}, "history.use_ignition: "),
    ({"history": {"bogus": 1}}, "history.bogus: unknown key"),
    ({"stats": {"flush_interval": 0}}, "stats.flush_interval: "),
    ({"stats": {"collection": "a$b"}}, "stats.collection: "),
    ({"stats": {"enabled": 1}}, "stats.enabled: "),
])
def test_bad_values_name_their_key(raw, message):
    with pytest.raises(ConfigError) as info:
        build(raw)
    assert str(info.value).startswith(message)
