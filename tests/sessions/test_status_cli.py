"""`waygps status` against a running site, and its summary of a metrics page."""

from __future__ import annotations

import argparse
import socket
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet import reactor, threads

from waygps.cli import status
from waygps.config import Config, WebSocketConfig
from waygps.web.site import build_site


def fleet_registry() -> CollectorRegistry:
    """A registry with the names WayGPS exports, at known values."""
    registry = CollectorRegistry()
    Gauge("waygps_devices_online", "", registry=registry).set(3)
    open_ = Gauge("waygps_connections_open", "", ["listener"], registry=registry)
    open_.labels("gv50-tcp-8081").set(2)
    open_.labels("teltonika-tcp-8080").set(1)
    Counter("waygps_reports_stored", "", ["driver"], registry=registry).labels("gv50").inc(1234)
    Gauge("waygps_reports_stored_per_second", "", registry=registry).set(2.5)
    rejected = Counter("waygps_frames_rejected", "", ["driver", "reason"], registry=registry)
    rejected.labels("gv50", "bad_checksum").inc(5)
    rejected.labels("teltonika", "crc").inc(2)
    Counter("waygps_connections_refused", "", ["listener", "reason"], registry=registry).labels(
        "gv50-tcp-8081", "unknown_device").inc(4)
    Gauge("waygps_store_batch_seconds_recent", "", registry=registry).set(0.0041)
    Histogram("waygps_store_batch_seconds", "", registry=registry).observe(0.004)
    Gauge("waygps_store_queue_depth", "", registry=registry).set(17)
    Counter("waygps_store_failures", "", ["reason"], registry=registry).labels("timeout").inc(1)
    Gauge("waygps_store_backpressure", "", registry=registry).set(0)
    Gauge("waygps_websocket_clients", "", registry=registry).set(2)
    Gauge("waygps_commands_pending", "", registry=registry).set(1)
    return registry


def args(**values: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    status.add_arguments(parser)
    argv = []
    for key, value in values.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


@pytest_twisted.inlineCallbacks
def test_status_prints_a_summary_of_a_running_site(capsys: Any) -> None:
    site = build_site([], reactor=reactor, registry=fleet_registry())
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port
    config = Config(websocket=WebSocketConfig(host="0.0.0.0", port=number))
    try:
        code = yield threads.deferToThread(status.run, args(), config)
    finally:
        yield port.stopListening()
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        f"WayGPS  http://127.0.0.1:{number}/metrics",
        "devices online       3",
        "connections open     3  (gv50-tcp-8081 2, teltonika-tcp-8080 1)",
        "reports              2.5/s over the last minute, 1234 stored since start",
        "rejected frames      7  (gv50 bad_checksum 5, teltonika crc 2)",
        "refused              4  (gv50-tcp-8081 unknown_device 4)",
        "store                4.1 ms mean batch (last minute), queue 17, 1 failed batches",
        "websocket clients    2",
        "commands pending     1",
    ]


@pytest_twisted.inlineCallbacks
def test_status_with_url_reads_the_real_registry(capsys: Any) -> None:
    from sessions_fakes import FakeConnection, registry

    sessions = registry()
    for n in range(4):
        sessions.attach(FakeConnection(f"86289402018{n:04d}"))
    port = reactor.listenTCP(0, build_site([], reactor=reactor), interface="127.0.0.1")
    try:
        code = yield threads.deferToThread(status.run, args(url=f"127.0.0.1:{port.getHost().port}"), None)
    finally:
        yield port.stopListening()
    assert code == 0
    assert "devices online       4" in capsys.readouterr().out.splitlines()


def test_status_reports_an_unreachable_server(capsys: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # closed again: nothing listens there
    code = status.run(args(url=f"http://127.0.0.1:{free}/metrics", timeout=2), None)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert f"cannot reach http://127.0.0.1:{free}/metrics" in captured.err


@pytest_twisted.inlineCallbacks
def test_status_refuses_a_page_that_is_not_waygps(capsys: Any) -> None:
    other = CollectorRegistry()
    Gauge("something_else", "", registry=other).set(1)
    port = reactor.listenTCP(0, build_site([], reactor=reactor, registry=other), interface="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/"
        code = yield threads.deferToThread(status.run, args(url=url), None)
    finally:
        yield port.stopListening()
    assert code == 1
    assert "not a WayGPS server" in capsys.readouterr().err


@pytest.mark.parametrize("given, expected", [
    (None, "http://127.0.0.1:8000/metrics"),
    ("example.org:9000", "http://example.org:9000/metrics"),
    ("https://example.org/", "https://example.org/metrics"),
    ("http://example.org/custom/metrics", "http://example.org/custom/metrics"),
])
def test_metrics_url(given: str | None, expected: str) -> None:
    assert status.metrics_url(given, Config()) == expected


def test_summary_shows_paused_reads_and_lifetime_latency_without_recent_gauges() -> None:
    text = (
        "waygps_devices_online 0\n"
        "waygps_store_batch_seconds_sum 0.5\n"
        "waygps_store_batch_seconds_count 100\n"
        "waygps_store_backpressure 1\n"
    )
    lines = status.summary(status.parse(text), "u")
    assert "store                5.0 ms mean batch (since start), queue 0, 0 failed batches, " \
           "DEVICE READS PAUSED (queue full)" in lines
    assert "reports              rate unknown, 0 stored since start" in lines


def test_the_port_comes_from_the_configuration_file(tmp_path: Any) -> None:
    path = tmp_path / "waygps.toml"
    path.write_text('[websocket]\nport = 8123\nhost = "10.1.2.3"\n')
    config = status._config(args(config=path), None)
    assert status.metrics_url(None, config) == "http://10.1.2.3:8123/metrics"


def test_a_broken_configuration_file_exits_2(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "waygps.toml"
    path.write_text("[websocket\n")
    assert status.run(args(config=path), None) == 2
    assert "configuration error" in capsys.readouterr().err


@pytest_twisted.inlineCallbacks
def test_status_sends_the_metrics_token_of_the_configuration(capsys: Any) -> None:
    from waygps.config import WebConfig

    site = build_site([], reactor=reactor, registry=fleet_registry(), metrics_token="scrape-token")
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port
    try:
        with_token = Config(websocket=WebSocketConfig(port=number), web=WebConfig(metrics_token="scrape-token"))
        code = yield threads.deferToThread(status.run, args(), with_token)
        without = yield threads.deferToThread(status.run, args(), Config(websocket=WebSocketConfig(port=number)))
    finally:
        yield port.stopListening()
    captured = capsys.readouterr()
    assert code == 0 and "devices online       3" in captured.out
    assert without == 1 and "answered HTTP 401" in captured.err
