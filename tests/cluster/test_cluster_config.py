"""The [cluster] section, listener.proxy_protocol and embedded.replica_set."""

from __future__ import annotations

import pytest

from waygps.config import ConfigError, build
from waygps.drivers import find_drivers


def test_defaults_and_values() -> None:
    config = build({})
    assert (config.cluster.feed, config.cluster.heartbeat_interval, config.cluster.lease_seconds) == ("auto", 5.0, 20.0)
    assert config.embedded.replica_set is True
    config = build({"cluster": {"feed": "local", "heartbeat_interval": 1, "lease_seconds": 3},
                    "listener": [{"driver": "gv50", "port": 5001, "proxy_protocol": True}]}, find_drivers())
    assert config.cluster.feed == "local" and config.listeners[0].proxy_protocol is True


@pytest.mark.parametrize("raw, message", [
    ({"cluster": {"feed": "redis"}}, "cluster.feed: expected 'auto' or 'local', got 'redis'"),
    ({"cluster": {"lease_seconds": 0}}, "cluster.lease_seconds: must be greater than zero"),
    ({"cluster": {"heartbeat_interval": 10, "lease_seconds": 15}}, "cluster.lease_seconds: 15 must be at least"),
    ({"cluster": {"heartbeat": 1}}, "cluster.heartbeat"),
    ({"listener": [{"driver": "generic", "port": 5002, "transport": "udp", "proxy_protocol": True}]},
     "listener[0].proxy_protocol: the PROXY protocol applies to TCP listeners only"),
    ({"listener": [{"driver": "gv50", "port": 5003, "proxy_protocol": "yes"}]}, "listener[0].proxy_protocol"),
])
def test_bad_values_are_one_line_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(raw, find_drivers())
    assert str(caught.value).startswith(message)
