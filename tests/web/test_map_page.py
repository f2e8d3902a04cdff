"""The map page and its static files over HTTP, and the [map] / feed-limit configuration keys."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.client import Agent, readBody

from waygps.config import ConfigError, build
from waygps.web.map import STATIC, render_page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest_twisted.inlineCallbacks
def fetch(url: str) -> Any:
    response = yield Agent(reactor).request(b"GET", url.encode())
    body = yield readBody(response)
    return response.code, dict(response.headers.getAllRawHeaders()), body


def page_config(body: bytes) -> dict:
    found = re.search(rb'<script id="waygps-config" type="application/json">(.*?)</script>', body)
    assert found is not None
    return json.loads(found.group(1))


@pytest_twisted.inlineCallbacks
def test_the_map_is_served_at_the_root_and_at_map_with_its_configuration(start_server: Any) -> None:
    server = yield start_server(websocket={"path": "/live/feed/"},
                                map={"tiles": "https://tiles.example/{z}/{x}/{y}.png", "attribution": "Example"})
    base = f"http://127.0.0.1:{server.web_port}"
    for path in ("/", "/map", "/map/"):
        code, headers, body = yield fetch(base + path)
        assert code == 200 and headers[b"Content-Type"] == [b"text/html; charset=utf-8"], path
        assert page_config(body) == {"tiles": "https://tiles.example/{z}/{x}/{y}.png", "attribution": "Example",
                                     "maxZoom": 19, "wsPath": "/live/feed/"}
        assert b"/static/vendor/leaflet/leaflet.js" in body and b"/static/map.js" in body
    for path, kind in (("/static/vendor/leaflet/leaflet.js", b"text/javascript"),
                       ("/static/vendor/leaflet/leaflet.css", b"text/css"),
                       ("/static/vendor/leaflet/images/marker-icon.png", b"image/png"),
                       ("/static/map.js", b"text/javascript")):
        code, headers, body = yield fetch(base + path)
        assert code == 200 and headers[b"Content-Type"][0].startswith(kind) and body, path
    code, _, _ = yield fetch(base + "/static/")  # no directory listings
    assert code == 404
    code, _, _ = yield fetch(base + "/static/vendor/")
    assert code == 404
    code, _, body = yield fetch(base + "/metrics")  # what was there stays
    assert code == 200 and b"waygps_websocket_clients" in body
    code, _, _ = yield fetch(base + "/health")
    assert code in (200, 503)


def test_the_default_tiles_are_openstreetmap_and_script_cannot_be_closed_from_the_configuration() -> None:
    config = build({})
    assert config.map.tiles == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert "OpenStreetMap" in config.map.attribution
    body = render_page((STATIC / "map.html").read_text(), {"attribution": "</script><script>alert(1)</script>"})
    assert b"</script><script>alert(1)" not in body
    assert page_config(body)["attribution"] == "</script><script>alert(1)</script>"


def test_leaflet_is_vendored_with_its_licence() -> None:
    vendor = STATIC / "vendor" / "leaflet"
    for name in ("leaflet.js", "leaflet.css", "LICENSE", "images/marker-icon.png", "images/layers.png"):
        assert (vendor / name).is_file(), name
    assert "BSD" in (vendor / "LICENSE").read_text() or "Redistribution" in (vendor / "LICENSE").read_text()


@pytest.mark.parametrize("section, message", [
    ({"map": {"tiles": 3}}, "map.tiles: expected a string"),
    ({"map": {"colour": "red"}}, "map.colour: unknown key"),
    ({"websocket": {"max_connections_per_token": 0}}, "websocket.max_connections_per_token: must be greater"),
    ({"websocket": {"max_clients": -1}}, "websocket.max_clients: must be greater"),
    ({"websocket": {"ping_interval": 0.5}}, "websocket.ping_interval: must be 0 (off) or at least 1 second"),
    ({"websocket": {"max_message_bytes": 0}}, "websocket.max_message_bytes: must be greater"),
])
def test_bad_map_and_feed_keys_are_one_line_errors(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(section)
    assert str(raised.value).startswith(message)
