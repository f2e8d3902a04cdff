"""Fakes for protocol tests of a driver: an event sink and a session registry (no store, no network)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from waygps.interfaces import IEventSink, ISessionRegistry


@implementer(IEventSink)
class HeldSink:
    """Every ``deliver`` returns a Deferred the test fires (``store``) or fails (``fail``): the
    acknowledgement must appear only after ``store`` and never after ``fail``."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Any], Deferred]] = []

    @property
    def events(self) -> list[Any]:
        return [event for batch, _ in self.batches for event in batch]

    def deliver(self, events: Any) -> Deferred:
        d: Deferred = Deferred()
        self.batches.append((list(events), d))
        return d

    def store(self, index: int) -> None:
        self.batches[index][1].callback(None)

    def fail(self, index: int) -> None:
        self.batches[index][1].errback(Failure(RuntimeError("store down")))

    def watch(self, producer: Any) -> None:
        """No back-pressure here: a test holds batches itself (``fail`` / answering them)."""

    def unwatch(self, producer: Any) -> None:
        """Nothing was watched (see ``watch``)."""


@implementer(IEventSink)
class FakeSink(HeldSink):
    """A sink that stores at once: ``events`` lists everything delivered."""

    def deliver(self, events: Any) -> Deferred:
        self.batches.append((list(events), succeed(None)))
        return self.batches[-1][1]


@implementer(ISessionRegistry)
class FakeSessions:
    """Allows every device (or none: ``allowed=False``) and records what the adapter told it."""

    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed
        self.asked: list[str] = []
        self.attached: list[Any] = []
        self.detached: list[str] = []
        self.errors: list[str] = []  # the protocol error a connection ended on, "" for none

    def authorize(self, imei: str, listener: Any) -> Deferred:
        self.asked.append(imei)
        return succeed(self.allowed)

    def attach(self, connection: Any) -> None:
        self.attached.append(connection)

    def detach(self, connection: Any, reason: str, error: str = "") -> None:
        self.detached.append(reason)
        self.errors.append(error)

    def activity(self, connection: Any, now: Any) -> None:
        """Reads are not recorded: tests assert on attach / detach."""

    def get(self, imei: str) -> Any:
        return self.attached[-1] if self.attached else None


Sessions = FakeSessions  # the name the built-in drivers' tests used first

__all__ = ["FakeSessions", "FakeSink", "HeldSink", "Sessions"]
