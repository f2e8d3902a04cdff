"""In-process publication of what happened: stored reports, sessions, command statuses."""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger
from zope.interface import implementer

from waygps.interfaces import IEventPublisher

log = Logger(namespace="waygps.bus")


@implementer(IEventPublisher)
class EventBus:
    """Synchronous fan-out; a subscriber that raises is logged and the rest still run."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Any], None]] = []

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Any) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.failure("subscriber {callback!r} failed on {event!r}", callback=callback, event=event)
