"""A storm of connecting devices: the command service's store operations are few and bounded (no store needed)."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from waygps.bus import EventBus
from waygps.commands.service import MAX_OPERATIONS, SCREEN_BATCH, CommandService
from waygps.config import CommandsConfig
from waygps.events import DeviceConnected

WHEN = datetime(2026, 11, 29, tzinfo=timezone.utc)


class SilentQueue:
    """Every query waits until the test answers it."""

    def __init__(self) -> None:
        self.screens: list[tuple[list[str], Deferred]] = []
        self.waiting: list[Deferred] = []

    def with_open_commands(self, imeis: list[str]) -> Deferred:
        d: Deferred = Deferred()
        self.screens.append((list(imeis), d))
        return d

    def sent_to(self, imei: str) -> Deferred:
        d: Deferred = Deferred()
        self.waiting.append(d)
        return d


class NoSessions:
    def get(self, imei: str) -> None:
        return None  # the device is gone again: no delivery check queries the store


def storm(devices: int) -> tuple[CommandService, SilentQueue, Clock]:
    bus, clock = EventBus(), Clock()
    service = CommandService(None, NoSessions(), bus, CommandsConfig(), clock, instance_id="a")
    service.running = True
    queue = service.queue = SilentQueue()  # type: ignore[assignment]
    service._unsubscribe = bus.subscribe(service._on_event)
    for n in range(devices):
        bus.publish(DeviceConnected(imei=f"86000000000{n:04d}", protocol="gv50", server_time=WHEN,
                                    peer=f"10.0.0.1:{n}", transport="tcp", listener="gv50"))
    return service, queue, clock


def test_devices_connecting_during_a_screening_are_screened_together() -> None:
    devices = SCREEN_BATCH + 6
    service, queue, clock = storm(devices)
    # the first device's screening went out at once; the others arrived while it was out
    assert [len(imeis) for imeis, _ in queue.screens] == [1]
    queue.screens[0][1].callback([])
    assert [len(imeis) for imeis, _ in queue.screens] == [1, SCREEN_BATCH]
    queue.screens[1][1].callback([])
    assert [len(imeis) for imeis, _ in queue.screens] == [1, SCREEN_BATCH, 5]
    queue.screens[2][1].callback([])
    assert queue.waiting == []  # no open command: no query of their own
    assert not service._work and not service._locks and not service._screening


def test_devices_with_open_commands_wait_for_a_free_operation() -> None:
    devices = MAX_OPERATIONS * 3
    service, queue, clock = storm(devices)
    while not queue.screens[-1][1].called:
        imeis, screened = queue.screens[-1]
        screened.callback(imeis)  # every one has an open command
    assert [len(imeis) for imeis, _ in queue.screens] == [1, devices - 1]
    assert len(queue.waiting) == MAX_OPERATIONS  # the others wait without a query of their own
    answered = 0
    while answered < len(queue.waiting):
        queue.waiting[answered].callback([])
        answered += 1
        assert len(queue.waiting) - answered <= MAX_OPERATIONS
    assert answered == devices and not service._work and not service._locks


def test_a_failed_screening_looks_at_every_device() -> None:
    service, queue, clock = storm(3)
    queue.screens[0][1].errback(RuntimeError("store down"))
    queue.screens[1][1].errback(RuntimeError("store down"))
    assert len(queue.waiting) == 3
    for d in queue.waiting:
        d.callback([])
    assert not service._work


def test_devices_waiting_for_screening_at_stop_are_dropped() -> None:
    service, queue, clock = storm(3)
    service.stopService()
    queue.screens[0][1].callback([])
    assert len(queue.screens) == 1 and not service._work and not service._arrivals
