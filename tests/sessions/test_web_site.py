"""The web site on a real port: /metrics (Prometheus text), /health (JSON), mounted resources."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource

from sessions_fakes import FakeConnection, registry
from waygps.web.health import Check, listening_check
from waygps.web.site import build_site, mount

IMEI = "862894020180553"

# Twisted's Agent warns about its own transport in readBody; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using readBody:DeprecationWarning")


def serve(checks: list, extra: dict | None = None, **kw: Any) -> Deferred:
    site = build_site(checks, extra, reactor=reactor, **kw)
    return succeed(reactor.listenTCP(0, site, interface="127.0.0.1"))


@inlineCallbacks
def get(port: Any, path: str, headers: Any = None) -> Any:
    response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port.getHost().port}{path}".encode(),
                                            headers)
    body = yield readBody(response)
    return response, body


@pytest_twisted.inlineCallbacks
def test_metrics_are_served_in_the_prometheus_text_format() -> None:
    sessions = registry()
    sessions.attach(FakeConnection(IMEI))
    sessions.attach(FakeConnection("356307042441013"))
    port = yield serve([])
    try:
        response, body = yield get(port, "/metrics")
    finally:
        yield port.stopListening()
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["waygps_devices_online"].samples[0].value == 2
    for name in ("waygps_frames_received", "waygps_frames_rejected", "waygps_reports_stored",
                 "waygps_store_batch_seconds", "waygps_store_queue_depth", "waygps_acks_sent",
                 "waygps_connections_open", "waygps_websocket_clients", "waygps_commands_pending",
                 "waygps_reports_stored_per_second"):
        assert name in families, name


@pytest_twisted.inlineCallbacks
def test_metrics_from_a_given_registry() -> None:
    own = CollectorRegistry()
    Gauge("only_here", "a gauge of a private registry", registry=own).set(7)
    port = yield serve([], registry=own)
    try:
        _, body = yield get(port, "/metrics")
    finally:
        yield port.stopListening()
    assert b"only_here 7.0" in body
    assert b"waygps_devices_online" not in body


@pytest_twisted.inlineCallbacks
def test_health_is_200_when_every_check_passes() -> None:
    checks = [Check("store", lambda: succeed((True, "ping ok"))), Check("listener a", lambda: True)]
    port = yield serve(checks)
    try:
        response, body = yield get(port, "/health")
    finally:
        yield port.stopListening()
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert json.loads(body) == {
        "status": "ok", "failing": [],
        "checks": [{"name": "store", "ok": True, "detail": "ping ok"},
                   {"name": "listener a", "ok": True, "detail": "ok"}],
    }


@pytest_twisted.inlineCallbacks
def test_health_is_503_and_names_what_fails() -> None:
    never: Deferred = Deferred()

    def boom() -> Any:
        raise RuntimeError("socket gone")

    checks = [
        Check("store", lambda: never),
        Check("listener gv50", boom),
        Check("listener teltonika", lambda: (True, "listening")),
        Check("listener generic", lambda: (False, "not listening")),
    ]
    port = yield serve(checks, health_timeout=0.2)
    try:
        response, body = yield get(port, "/health")
    finally:
        yield port.stopListening()
    assert response.code == 503
    answer = json.loads(body)
    assert answer["status"] == "unavailable"
    assert answer["failing"] == ["store", "listener gv50", "listener generic"]
    details = {c["name"]: c["detail"] for c in answer["checks"]}
    assert details == {"store": "no answer within 0.2 s", "listener gv50": "socket gone",
                       "listener teltonika": "listening", "listener generic": "not listening"}


@pytest_twisted.inlineCallbacks
def test_listening_check_follows_a_real_port() -> None:
    held: dict = {"port": reactor.listenTCP(0, build_site([], reactor=reactor), interface="127.0.0.1")}
    check = listening_check("listener x", lambda: held["port"])
    port = yield serve([check])
    try:
        response, body = yield get(port, "/health")
        assert response.code == 200
        number = held["port"].getHost().port
        assert json.loads(body)["checks"][0]["detail"] == f"listening on 127.0.0.1:{number}"
        yield held["port"].stopListening()
        held["port"] = None
        response, body = yield get(port, "/health")
        assert response.code == 503
        assert json.loads(body)["checks"][0] == {"name": "listener x", "ok": False, "detail": "not listening"}
    finally:
        yield port.stopListening()


class Leaf(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"leaf:" + request.path


@pytest_twisted.inlineCallbacks
def test_extra_resources_share_the_port_at_nested_paths() -> None:
    port = yield serve([], {"/ws/gps/": Leaf()})
    try:
        _, with_slash = yield get(port, "/ws/gps/")
        _, without = yield get(port, "/ws/gps")
        index, text = yield get(port, "/")
        missing, _ = yield get(port, "/nothing")
    finally:
        yield port.stopListening()
    assert with_slash == b"leaf:/ws/gps/"
    assert without == b"leaf:/ws/gps"
    assert index.code == 200 and b"/metrics" in text
    assert missing.code == 404


def test_mount_refuses_the_root_and_a_second_resource_at_one_path() -> None:
    root = Resource()
    mount(root, "/a/b", Leaf())
    with pytest.raises(ValueError):
        mount(root, "/a/b/", Leaf())
    with pytest.raises(ValueError):
        mount(root, "/", Leaf())


@pytest_twisted.inlineCallbacks
def test_metrics_in_openmetrics_when_the_scraper_asks() -> None:
    from twisted.web.http_headers import Headers

    port = yield serve([])
    try:
        response, body = yield get(port, "/metrics",
                                   Headers({b"accept": [b"application/openmetrics-text; version=1.0.0"]}))
    finally:
        yield port.stopListening()
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


@pytest_twisted.inlineCallbacks
def test_metrics_and_health_require_the_metrics_token_when_configured() -> None:
    from twisted.web.http_headers import Headers

    port = yield serve([], metrics_token="scrape-me-please")
    try:
        for path in ("/metrics", "/health"):
            response, body = yield get(port, path)
            assert (response.code, body) == (401, b"token required\n")
            assert response.headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="waygps"']
            response, _ = yield get(port, f"{path}?token=wrong")
            assert response.code == 403
            response, _ = yield get(port, path, Headers({b"authorization": [b"Bearer wrong"]}))
            assert response.code == 403
            response, _ = yield get(port, f"{path}?token=scrape-me-please")
            assert response.code == 200
            response, body = yield get(port, path, Headers({b"authorization": [b"Bearer scrape-me-please"]}))
            assert response.code == 200
        assert b"waygps_web_refused" in body or path == "/health"
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_metrics_stay_open_without_a_token() -> None:
    port = yield serve([])
    try:
        response, _ = yield get(port, "/metrics")
    finally:
        yield port.stopListening()
    assert response.code == 200
