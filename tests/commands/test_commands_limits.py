"""A storm of connecting devices: the command service's store operations are bounded (no store needed)."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from waygps.bus import EventBus
from waygps.commands.service import MAX_OPERATIONS, CommandService
from waygps.config import CommandsConfig
from waygps.events import DeviceConnected


class SilentQueue:
    """Every ``sent_to`` query waits until the test answers it."""

    def __init__(self) -> None:
        self.waiting: list[Deferred] = []

    def sent_to(self, imei: str) -> Deferred:
        d: Deferred = Deferred()
        self.waiting.append(d)
        return d


class NoSessions:
    def get(self, imei: str) -> None:
        return None  # the device is gone again: no delivery check queries the store


def test_connections_beyond_the_limit_wait_for_a_free_operation() -> None:
    bus = EventBus()
    service = CommandService(None, NoSessions(), bus, CommandsConfig(), Clock(), instance_id="a")
    service.running = True
    queue = service.queue = SilentQueue()  # type: ignore[assignment]
    service._unsubscribe = bus.subscribe(service._on_event)
    when = datetime(2026, 11, 29, tzinfo=timezone.utc)
    devices = MAX_OPERATIONS * 3
    for n in range(devices):
        bus.publish(DeviceConnected(imei=f"86000000000{n:04d}", protocol="gv50", server_time=when,
                                    peer=f"10.0.0.1:{n}", transport="tcp", listener="gv50"))
    assert len(queue.waiting) == MAX_OPERATIONS  # the others wait without a query of their own
    answered = 0
    while answered < len(queue.waiting):
        queue.waiting[answered].callback([])
        answered += 1
        assert len(queue.waiting) - answered <= MAX_OPERATIONS
    assert answered == devices and not service._work and not service._locks
