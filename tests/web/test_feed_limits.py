"""The feed's limits with real WebSocket clients: compression, pings, message size, JSON that cannot raise,
per-token and total connection limits, failed handshakes per address."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import REGISTRY

from feed_support import connect, frame, get, raw_connect, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def feed(**limits: Any) -> dict:
    return {"tokens": [{"token": "all-secret", "devices": "*"}, {"token": "other-secret", "devices": "*"}],
            **limits}


@pytest_twisted.inlineCallbacks
def test_permessage_deflate_is_accepted_and_messages_arrive(start_server: Any) -> None:
    server = yield start_server(websocket=feed())
    client = connect(server.web_port, "?token=all-secret", compress=True)
    protocol = yield client.opened
    assert protocol._perMessageCompress is not None  # negotiated
    state = yield get(client.messages)
    assert state["type"] == "initial_state"
    plain = connect(server.web_port, "?token=all-secret")
    protocol = yield plain.opened
    assert protocol._perMessageCompress is None  # not forced on a client that did not offer it


@pytest_twisted.inlineCallbacks
def test_a_client_that_answers_pings_stays_and_one_that_does_not_is_dropped(start_server: Any) -> None:
    server = yield start_server(websocket=feed(ping_interval=1.0, ping_timeout=2.0))
    answering = connect(server.web_port, "?token=all-secret")
    yield answering.opened
    before = sample("waygps_websocket_clients_dropped_total", reason="ping_timeout")
    # A raw client completes the handshake and then never answers (never reads frames at all).
    silent = yield raw_connect(server.web_port, "/ws/gps/?token=all-secret")
    yield wait_until(lambda: silent.status == 101, "the handshake")
    yield silent.closed  # dropped by the server
    assert sample("waygps_websocket_clients_dropped_total", reason="ping_timeout") == before + 1
    yield wait_until(lambda: answering.pings >= 3, "three pings to the answering client")
    assert not answering.closed.called


@pytest_twisted.inlineCallbacks
def test_a_message_over_the_limit_is_refused_before_it_is_read(start_server: Any) -> None:
    server = yield start_server(websocket=feed())
    before = sample("waygps_websocket_clients_dropped_total", reason="message_too_big")
    client = yield raw_connect(server.web_port, "/ws/gps/?token=all-secret")
    yield wait_until(lambda: client.status == 101, "the handshake")
    # The header announces 10 MB; only the first kilobyte follows.
    client.transport.write(frame(0x1, b"[" * 1024, length=10 * 1024 * 1024))
    yield wait_until(lambda: client.close_code() is not None or client.closed.called, "the server to close")
    assert client.close_code() == 1009  # message too big
    yield client.closed
    assert sample("waygps_websocket_clients_dropped_total", reason="message_too_big") == before + 1


@pytest_twisted.inlineCallbacks
def test_bad_json_gets_an_error_and_the_connection_goes_on(start_server: Any) -> None:
    server = yield start_server(websocket=feed())
    client = connect(server.web_port, "?token=all-secret")
    protocol = yield client.opened
    yield get(client.messages)  # initial_state
    deep_before = sample("waygps_websocket_bad_messages_total", reason="too_deep")
    cases = [
        (b"[" * 60000, False, "too_deep"),  # json.loads raises RecursionError on this
        (b'{"type": ' * 6000 + b"1" + b"}" * 6000, False, "too_deep"),
        (b"{not json", False, "invalid_json"),
        (b'{"type": "subscribe_mobile"}', True, "binary"),
        (b"[1, 2]", False, "not_an_object"),
        (b'{"type": ["subscribe_mobile"]}', False, "not_an_object"),
        (b'{"type": "' + b"x" * 5000 + b'"}', False, "unknown_type"),
        (b'{"type": "subscribe_mobile", "mobile_id": {"$ne": 1}}', False, "no_mobile_id"),
    ]
    for payload, binary, reason in cases:
        before = sample("waygps_websocket_bad_messages_total", reason=reason)
        protocol.sendMessage(payload, isBinary=binary)
        error = yield get(client.messages)
        assert error["type"] == "error", payload[:40]
        assert len(error["message"]) < 200
        assert sample("waygps_websocket_bad_messages_total", reason=reason) == before + 1, reason
    assert sample("waygps_websocket_bad_messages_total", reason="too_deep") == deep_before + 2
    protocol.sendMessage(json.dumps({"type": "subscribe_mobile", "mobile_id": "862894020180553"}).encode())
    protocol.sendMessage(b"{}")
    error = yield get(client.messages)  # still connected, still answering
    assert error["type"] == "error" and not client.closed.called


@pytest_twisted.inlineCallbacks
def test_connections_per_token_and_in_total_are_limited(start_server: Any) -> None:
    server = yield start_server(websocket=feed(max_connections_per_token=2, max_clients=3))
    first = connect(server.web_port, "?token=all-secret")
    second = connect(server.web_port, "?token=all-secret")
    first_protocol = yield first.opened
    yield second.opened
    refused = yield raw_connect(server.web_port, "/ws/gps/?token=all-secret")
    yield wait_until(lambda: refused.status is not None, "an answer")
    assert refused.status == 429
    other = connect(server.web_port, "?token=other-secret")  # another token still gets in...
    yield other.opened
    full = yield raw_connect(server.web_port, "/ws/gps/?token=other-secret")
    yield wait_until(lambda: full.status is not None, "an answer")
    assert full.status == 503  # ...until the server is full
    first_protocol.sendClose(1000)
    yield first.closed
    again = connect(server.web_port, "?token=all-secret")  # a freed slot is given again
    yield again.opened
    assert sample("waygps_websocket_handshakes_refused_total", reason="token_limit") >= 1
    assert sample("waygps_websocket_handshakes_refused_total", reason="max_clients") >= 1


@pytest_twisted.inlineCallbacks
def test_failed_handshakes_are_rate_limited_per_address(start_server: Any) -> None:
    server = yield start_server(websocket=feed(failed_handshakes_per_minute=3))
    statuses = []
    for query in ("?token=wrong", "", "?token=wrong-again", "?token=all-secret"):
        client = yield raw_connect(server.web_port, f"/ws/gps/{query}")
        yield wait_until(lambda client=client: client.status is not None, "an answer")
        statuses.append(client.status)
        client.transport.loseConnection()
    # Three failures, then even the right token waits for the window to end.
    assert statuses == [403, 401, 403, 429]
