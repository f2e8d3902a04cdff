"""In-process publication of what happened: stored reports, sessions, command statuses."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.logger import Logger
from zope.interface import implementer

from waygps.events import DeviceConnected, DeviceDisconnected
from waygps.interfaces import IEventPublisher

log = Logger(namespace="waygps.bus")


@implementer(IEventPublisher)
class EventBus:
    """Synchronous fan-out; a subscriber that raises is logged and the rest still run."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Any], None]] = []
        self._snapshot: tuple[Callable[[Any], None], ...] = ()  # what publish iterates: no copy per event

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        self._snapshot = tuple(self._subscribers)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
                self._snapshot = tuple(self._subscribers)

        return unsubscribe

    def publish(self, event: Any) -> None:
        for callback in self._snapshot:
            try:
                callback(event)
            except Exception:
                log.failure("subscriber {callback!r} failed on {event!r}", callback=callback, event=event)


class LocalPublisher:
    """Announces what the persistence service stored on this instance's bus.

    The persistence service only stores; it hands every stored batch of events
    to a callable like this one. On a standalone MongoDB this bus is also the
    WebSocket feed (instance-local); on a replica set the feed follows the
    store's change streams instead (:mod:`waygps.cluster`) and this bus serves
    the in-process consumers (the command service: answers, speeds).
    """

    def __init__(self, publisher: IEventPublisher) -> None:
        self.publisher = publisher

    def __call__(self, events: Iterable[Any]) -> None:
        for event in events:
            if isinstance(event, (DeviceConnected, DeviceDisconnected)):
                continue  # the session registry publishes these itself, at once
            try:
                self.publisher.publish(event)
            except Exception:
                log.failure("publishing {event!r} failed", event=event)
