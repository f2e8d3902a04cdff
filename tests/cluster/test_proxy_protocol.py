"""Device listeners behind a load balancer: PROXY v1 and v2 headers give the device's address."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest_twisted

from tests.commands.test_commands_e2e import GV50_IMEI, connect, gtfri, until
from waygps import metrics

OTHER_IMEI = "862894020180554"
V2_PREFIX = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source: str, port: int) -> bytes:
    return f"PROXY TCP4 {source} 10.0.0.5 {port} 5000\r\n".encode()


def v2(source: str, port: int) -> bytes:
    addresses = socket.inet_aton(source) + socket.inet_aton("10.0.0.5") + struct.pack("!HH", port, 5000)
    return V2_PREFIX + b"\x21\x11" + struct.pack("!H", len(addresses)) + addresses


def refused(reason: str, listener: str) -> float:
    return metrics.CONNECTIONS_REFUSED.labels(listener, reason)._value.get()


@pytest_twisted.inlineCallbacks
def test_v1_and_v2_headers_give_the_device_address_to_limits_and_logs(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "proxy_protocol": True,
                                            "max_connections_per_ip": 1, "name": "gv50-behind-lb"}])
    port = server.port()
    first = yield connect(port)
    first.transport.write(v1("203.0.113.7", 40001) + gtfri(10.0, 1))
    yield until(lambda: b"+SACK:0001$" in first.received, "SACK behind a v1 header")
    assert server.sessions.get(GV50_IMEI).peer == "203.0.113.7:40001"

    # The per-address limit counts the device's address, not the balancer's (127.0.0.1 for all three).
    limited = refused("max_connections_per_ip", "gv50-behind-lb")
    same = yield connect(port)
    same.transport.write(v2("203.0.113.7", 40002) + gtfri(11.0, 2, OTHER_IMEI))
    yield until(lambda: same.lost, "a second connection of 203.0.113.7 refused")
    assert refused("max_connections_per_ip", "gv50-behind-lb") == limited + 1

    other = yield connect(port)
    other.transport.write(v2("198.51.100.9", 40003))
    other.transport.write(gtfri(12.0, 3, OTHER_IMEI))
    yield until(lambda: b"+SACK:0003$" in other.received, "SACK behind a v2 header")
    assert server.sessions.get(OTHER_IMEI).peer == "198.51.100.9:40003"
    stored = server.sync_db()["DadosVeiculo"].count_documents({})
    assert stored == 2


@pytest_twisted.inlineCallbacks
def test_a_connection_without_a_valid_header_is_logged_counted_and_closed(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "proxy_protocol": True, "name": "gv50-lb"}])
    before = refused("proxy_header", "gv50-lb")
    for garbage in (gtfri(10.0, 1), b"PROXY TCP4 not-an-address\r\n", b"PROXY " + b"x" * 200,
                    V2_PREFIX + b"\x21\x11\xff\xff"):
        device = yield connect(server.port())
        device.transport.write(garbage)
        if garbage.startswith(V2_PREFIX):
            device.transport.write(b"\x00" * 5000)  # a header longer than any balancer sends
        yield until(lambda d=device: d.lost, f"connection closed after {garbage[:20]!r}")
        assert device.received == b""
    assert refused("proxy_header", "gv50-lb") >= before + 4
    assert server.sync_db()["DadosVeiculo"].count_documents({}) == 0
