"""A device connected to the running service is online in Veiculo, on /metrics and in `waygps status`,
and offline in all three once it disconnects (issue 9, "done when")."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.web.client import Agent, readBody

from waygps.cli import status

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Using readBody:DeprecationWarning")]

IMEI = "862894020180553"


class Device(Protocol):
    def __init__(self) -> None:
        self.received: DeferredQueue = DeferredQueue()
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.put(data)

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(None)


@pytest_twisted.inlineCallbacks
def wait_for(predicate: Any, what: str, attempts: int = 200) -> Any:
    for _ in range(attempts):
        value = yield predicate()
        if value:
            return value
        yield deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"never happened: {what}")


@pytest_twisted.inlineCallbacks
def fetch(port: int, path: str) -> Any:
    response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}{path}".encode())
    body = yield readBody(response)
    return response.code, body.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page, keyed by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def online_gauge(text: str) -> float:
    return samples(text)[("waygps_devices_online", ())]


def status_lines(port: int) -> Any:
    args = argparse.Namespace(url=f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    return threads.deferToThread(status.run, args, None)


@pytest_twisted.inlineCallbacks
def test_a_device_is_online_then_offline_in_veiculo_metrics_and_status(start_server: Any,
                                                                        capsys: Any) -> None:
    server = yield start_server(listeners=[{"driver": "generic", "transport": "tcp"}])
    web_port = server.web_port  # the service's own HTTP port: WebSocket, /metrics, /health
    listener = server.service.listeners[0].listener.name
    vehicles = server.sync_db()["Veiculo"]
    code, body = yield fetch(web_port, "/health")
    assert code == 200, body
    assert [(c["name"], c["ok"]) for c in json.loads(body)["checks"]] == [
        ("store", True), (f"listener {listener}", True)]
    code, text = yield fetch(web_port, "/metrics")
    before = samples(text)

    def grew(after: dict, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    device = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    line = {"imei": IMEI, "lat": -17.72, "lon": -63.1, "speed": 20, "time": "2026-01-05T10:00:00Z"}
    device.transport.write(json.dumps(line).encode() + b"\n")
    answer = yield device.received.get()
    assert answer.startswith(b"OK 1")

    doc = yield wait_for(lambda: threads.deferToThread(
        vehicles.find_one, {"IMEI": IMEI, "online": True}), "Veiculo.online true")
    assert doc["protocol"] == "generic" and doc.get("lastSeen") is not None
    code, text = yield fetch(web_port, "/metrics")
    assert code == 200
    after = samples(text)
    assert online_gauge(text) == 1
    assert after[("waygps_connections_open", (("listener", listener),))] == 1
    assert grew(after, "waygps_reports_stored_total", driver="generic") == 1
    assert grew(after, "waygps_frames_decoded_total", driver="generic") == 1
    assert grew(after, "waygps_acks_sent_total", driver="generic") == 1
    capsys.readouterr()
    assert (yield status_lines(web_port)) == 0
    assert "devices online       1" in capsys.readouterr().out.splitlines()

    device.transport.loseConnection()
    yield device.lost
    yield wait_for(lambda: threads.deferToThread(
        vehicles.find_one, {"IMEI": IMEI, "online": False}), "Veiculo.online false")
    code, text = yield fetch(web_port, "/metrics")
    assert online_gauge(text) == 0
    assert samples(text)[("waygps_connections_open", (("listener", listener),))] == 0
    assert (yield status_lines(web_port)) == 0
    assert "devices online       0" in capsys.readouterr().out.splitlines()
    assert server.sessions.get(IMEI) is None


@pytest_twisted.inlineCallbacks
def test_health_names_a_listener_that_is_down(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "generic", "transport": "tcp"},
                                           {"driver": "generic", "transport": "udp"}])
    second = server.service.listeners[1]
    yield second.stop_listening()
    code, body = yield fetch(server.web_port, "/health")
    answer = json.loads(body)
    assert code == 503
    assert answer["failing"] == [f"listener {second.listener.name}"]
    assert answer["checks"][0] == {"name": "store", "ok": True, "detail": "ping ok"}
