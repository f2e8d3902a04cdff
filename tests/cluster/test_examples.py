"""examples/cluster/*.toml load, and examples/haproxy.cfg sends each port to the instances' listeners."""

from __future__ import annotations

import re
from pathlib import Path

from waygps.config import load

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_two_instance_example_matches_the_haproxy_configuration() -> None:
    configs = {name: load(str(EXAMPLES / "cluster" / f"{name}.toml")) for name in ("a", "b")}
    assert {c.commands.instance_id for c in configs.values()} == {"a", "b"}
    assert configs["a"].mongodb.uri == configs["b"].mongodb.uri  # one store
    haproxy = (EXAMPLES / "haproxy.cfg").read_text()
    servers = {(name, int(port)) for name, port in re.findall(r"server (\w) 127\.0\.0\.1:(\d+)", haproxy)}
    for name, config in configs.items():
        assert all(listener.proxy_protocol for listener in config.listeners)
        for listener in config.listeners:
            assert (name, listener.port) in servers, f"{name}: {listener.name} not behind HAProxy"
        assert (name, config.websocket.port) in servers
    assert haproxy.count("send-proxy-v2") == 6
