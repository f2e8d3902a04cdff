"""Slow clients and the subscription index, on Twisted's fakes: the latest update per device, a close code when behind."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport

from feed_support import close_code, messages
from waygps.bus import EventBus
from waygps.config import TokenConfig, WebSocketConfig
from waygps.events import DeviceConnected, Position
from waygps.web.websocket import CLOSE_TOO_SLOW, GpsFeedFactory

IMEI = "862894020180553"
OTHER = "356307042441013"
T0 = datetime(2026, 3, 9, 11, 0, tzinfo=timezone.utc)


class Vehicles:
    def collection(self, kind: str) -> "Vehicles":
        return self

    def find(self, query: Any) -> Any:
        return succeed([])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def position(n: int, imei: str = IMEI) -> Position:
    return Position(imei=imei, protocol="gv50", device_time=T0 + timedelta(seconds=n), server_time=T0,
                    event="GTFRI", key=str(n), valid=True, latitude=-17.0 - n / 1000, longitude=-63.1)


def status(n: int) -> DeviceConnected:
    return DeviceConnected(imei=IMEI, protocol="gv50", server_time=T0 + timedelta(seconds=n), peer=f"p{n}",
                           transport="tcp", listener="l")


class Harness:
    def __init__(self, **limits: Any) -> None:
        self.clock = MemoryReactorClock()
        self.bus = EventBus()
        scope = TokenConfig(token_sha256=hashlib.sha256(b"secret").hexdigest(), devices=None)
        config = WebSocketConfig(tokens=(scope,), ping_interval=0, **limits)
        self.factory = GpsFeedFactory(config, Vehicles(), self.bus, reactor=self.clock)
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        self.protocol = self.factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.protocol.dataReceived((f"GET /ws/gps/?token=secret HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                    f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        assert self.transport.value().startswith(b"HTTP/1.1 101")
        assert [m["type"] for m in self.messages()] == ["initial_state"]

    def messages(self) -> list[dict]:
        return messages(self.transport.value())

    def full(self) -> None:
        """What the transport does when its write buffer is full."""
        self.transport.producer.pauseProducing()

    def drained(self) -> None:
        self.transport.producer.resumeProducing()


def test_a_slow_client_gets_statuses_in_order_and_the_latest_update_per_device() -> None:
    h = Harness(max_queue=10)
    coalesced = sample("waygps_websocket_updates_coalesced_total")
    h.full()
    for n in range(1, 1001):
        h.bus.publish(position(n, IMEI if n % 2 else OTHER))
    h.bus.publish(status(2000))
    assert len(h.messages()) == 1  # nothing written while the buffer is full
    assert sample("waygps_websocket_updates_coalesced_total") == coalesced + 998
    updates_sent = sample("waygps_websocket_messages_sent_total", type="gps_update")
    h.drained()
    sent = h.messages()[1:]
    assert sample("waygps_websocket_messages_sent_total", type="gps_update") == updates_sent + 2
    assert [m["type"] for m in sent] == ["mobile_status", "gps_update", "gps_update"]
    assert {m["data"]["latitud"] for m in sent[1:]} == {-17.999, -18.0}
    assert close_code(h.transport.value()) is None


def test_a_client_that_stays_behind_is_closed_with_a_code() -> None:
    h = Harness(slow_client_timeout=30.0)
    dropped = sample("waygps_websocket_clients_dropped_total", reason="too_slow")
    h.full()
    h.clock.advance(29.0)
    h.drained()  # caught up in time: nothing happens
    h.full()
    h.clock.advance(29.0)
    assert close_code(h.transport.value()) is None
    h.clock.advance(1.0)
    assert close_code(h.transport.value()) == CLOSE_TOO_SLOW
    assert sample("waygps_websocket_clients_dropped_total", reason="too_slow") == dropped + 1
    h.bus.publish(position(1))  # nothing more is queued for it
    assert not h.protocol.latest and not h.protocol.backlog


def test_a_client_whose_backlog_overflows_is_closed_with_a_code_not_silently_thinned() -> None:
    h = Harness(max_queue=3)
    h.full()
    for n in range(3):
        h.bus.publish(status(n))
    assert close_code(h.transport.value()) is None
    h.bus.publish(status(3))
    assert close_code(h.transport.value()) == CLOSE_TOO_SLOW


def test_subscriptions_narrow_the_feed_and_unsubscribing_widens_it_again() -> None:
    from feed_support import frame

    h = Harness()

    def say(message: str) -> None:
        h.protocol.dataReceived(frame(0x1, message.encode()))

    say(f'{{"type": "subscribe_mobile", "mobile_id": "{IMEI}"}}')
    assert h.factory.watching == {IMEI: {h.protocol}} and not h.factory.unsubscribed
    h.bus.publish(position(1, OTHER))
    h.bus.publish(position(2, IMEI))
    say(f'{{"type": "unsubscribe_mobile", "mobile_id": "{IMEI}"}}')
    assert h.factory.watching == {} and h.factory.unsubscribed == {h.protocol}
    h.bus.publish(position(3, OTHER))
    assert [(m["mobile_id"], m["data"]["latitud"]) for m in h.messages()[1:]] == [(IMEI, -17.002), (OTHER, -17.003)]
    from twisted.python.failure import Failure
    from twisted.internet.error import ConnectionDone

    h.protocol.connectionLost(Failure(ConnectionDone()))
    assert not h.factory.unsubscribed and not h.factory.clients and h.factory.counts.total == 0
