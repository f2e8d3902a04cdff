"""Which device is on which connection of this instance: online / offline.

The registry is told by the driver adapter (``waygps.drivers.base``) when a
device identified itself (``attach``), when its channel closed or expired
(``detach``) and when a frame arrived (``activity``). Every change becomes a
``DeviceConnected`` / ``DeviceDisconnected`` event, delivered to the sink (the
persistence service writes ``Veiculo.online``, ``protocol``, ``lastSeen`` and
``instance`` in its batches) and published on the bus at once (the WebSocket
service turns it into ``mobile_status``, the command service sends what is
pending).

Only one channel per IMEI is current. A device that connects again while its
old connection still looks open replaces it: on mobile links the old one is
almost always dead without either side having noticed.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from waygps import metrics
from waygps.config import ListenerConfig
from waygps.events import DeviceConnected, DeviceDisconnected
from waygps.interfaces import IDeviceConnection, IEventPublisher, IEventSink, ISessionRegistry

log = Logger(namespace="waygps.sessions")

REPLACED = "replaced by a newer connection"

# ``instance`` is set on the session events when the core events have that field, so that
# the persistence service can write ``Veiculo.instance`` (used by ``reset_stale``).
_INSTANCE_FIELD = {kind: "instance" in attrs.fields_dict(kind) for kind in (DeviceConnected, DeviceDisconnected)}


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class _AllowCache:
    """Answers of the ``Veiculo`` look-up, kept for a short time.

    A registered device is remembered for ``known_ttl`` seconds, an unknown one
    for ``unknown_ttl`` (short, so that a device registered with
    ``waygps device add`` gets in quickly, yet a flood of datagrams from an
    unregistered IMEI costs one query per ``unknown_ttl``). At most ``size``
    entries; the oldest go first.
    """

    def __init__(self, known_ttl: float, unknown_ttl: float, size: int) -> None:
        self.known_ttl = known_ttl
        self.unknown_ttl = unknown_ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def get(self, imei: str, now: float) -> bool | None:
        entry = self._entries.get(imei)
        if entry is None:
            return None
        allowed, until = entry
        if until <= now:
            del self._entries[imei]
            return None
        return allowed

    def put(self, imei: str, allowed: bool, now: float) -> None:
        self._entries.pop(imei, None)
        self._entries[imei] = (allowed, now + (self.known_ttl if allowed else self.unknown_ttl))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, imei: str) -> None:
        self._entries.pop(imei, None)

    def __len__(self) -> int:
        return len(self._entries)


@implementer(ISessionRegistry)
class SessionRegistry(Service):
    """The devices connected to this instance.

    Startup: ``startService`` then :meth:`reset_stale` (marks offline what a
    previous run of this instance left online) before the listeners open.
    ``stopService`` closes every device channel and fires once their
    ``DeviceDisconnected`` events are stored, so stop it before the
    persistence service.
    """

    name = "sessions"

    def __init__(self, store: Any, sink: IEventSink, publisher: IEventPublisher, reactor: Any,
                 instance_id: str, *, known_ttl: float = 60.0, unknown_ttl: float = 10.0,
                 cache_size: int = 100_000, lookup_timeout: float = 10.0, stop_timeout: float = 10.0) -> None:
        self.store = store
        self.sink = sink
        self.publisher = publisher
        self.reactor = reactor
        self.instance_id = instance_id
        self.lookup_timeout = lookup_timeout
        self.stop_timeout = stop_timeout
        self._current: dict[str, IDeviceConnection] = {}
        self._since: dict[str, datetime] = {}
        self._last_seen: dict[str, datetime] = {}
        self._allow = _AllowCache(known_ttl, unknown_ttl, cache_size)
        self._lookups: dict[str, list[Deferred]] = {}
        self._writes: set[Deferred] = set()
        self._started_at = 0.0
        self._drained: list[Deferred] = []

    # --- ISessionRegistry ----------------------------------------------------
    def authorize(self, imei: str, listener: ListenerConfig) -> Deferred:
        """Deferred[bool]: the allow-list.

        With ``accept_unknown_devices`` (the default) every device is allowed
        without a query. Otherwise the device needs a ``Veiculo`` document with
        its IMEI; answers are cached (see :class:`_AllowCache`) and concurrent
        look-ups of one IMEI share a single query. If the store cannot answer,
        the Deferred fails and the adapter refuses the device (fail closed).
        """
        if listener.accept_unknown_devices:
            return succeed(True)
        cached = self._allow.get(imei, self.reactor.seconds())
        if cached is not None:
            return succeed(cached)
        waiter: Deferred = Deferred()
        waiting = self._lookups.get(imei)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._lookups[imei] = [waiter]
        query = maybeDeferred(self.store.collection("vehicles").find_one, {"IMEI": imei}, {"_id": 1})
        query.addTimeout(self.lookup_timeout, self.reactor)
        query.addCallbacks(self._looked_up, self._lookup_failed, callbackArgs=(imei,),
                           errbackArgs=(imei, listener))
        return waiter

    def _looked_up(self, document: Any, imei: str) -> None:
        allowed = document is not None
        self._allow.put(imei, allowed, self.reactor.seconds())
        for waiter in self._lookups.pop(imei, []):
            waiter.callback(allowed)

    def _lookup_failed(self, failure: Failure, imei: str, listener: ListenerConfig) -> None:
        # One query serves every connection of ``imei`` waiting for it; the adapter logs each
        # refused connection with its peer.
        log.warn("{driver} {imei}: allow-list look-up on {listener} failed: {error}", driver=listener.driver,
                 imei=imei, listener=listener.name, error=failure.getErrorMessage() or failure.type.__name__)
        for waiter in self._lookups.pop(imei, []):
            waiter.errback(failure)

    def forget_authorization(self, imei: str) -> None:
        """Drop the cached allow-list answer of ``imei`` (after registering it)."""
        self._allow.forget(imei)

    def attach(self, connection: IDeviceConnection) -> None:
        imei = connection.imei
        old = self._current.get(imei)
        if old is connection:
            return
        now = _utc(self.reactor.seconds())
        # The new channel is current before the old one is closed, so that the
        # old one's detach (synchronous for a UDP peer) does not mark it offline.
        self._current[imei] = connection
        self._since[imei] = now
        self._last_seen[imei] = now
        metrics.DEVICES_ONLINE.set(len(self._current))
        if old is not None:
            log.info("{driver} {imei} {peer}: replaces its connection from {old_peer} on {old_listener}",
                     driver=connection.protocol, imei=imei, peer=connection.peer, old_peer=old.peer,
                     old_listener=old.listener)
            old.close(REPLACED)
        else:
            log.info("{driver} {imei} {peer}: online on {listener} ({transport})", driver=connection.protocol,
                     imei=imei, peer=connection.peer, listener=connection.listener,
                     transport=connection.transport_name)
        self._emit(self._event(DeviceConnected, imei=imei, protocol=connection.protocol, server_time=now,
                               peer=connection.peer, transport=connection.transport_name,
                               listener=connection.listener))

    def detach(self, connection: IDeviceConnection, reason: str, error: str = "") -> None:
        imei = connection.imei
        if self._current.get(imei) is not connection:
            log.debug("{driver} {imei} {peer}: stale connection closed ({why})", driver=connection.protocol,
                      imei=imei, peer=connection.peer, why=reason)
            return
        del self._current[imei]
        self._since.pop(imei, None)
        self._last_seen.pop(imei, None)
        metrics.DEVICES_ONLINE.set(len(self._current))
        log.info("{driver} {imei} {peer}: offline ({why})", driver=connection.protocol, imei=imei,
                 peer=connection.peer, why=reason)
        self._emit(self._event(DeviceDisconnected, imei=imei, protocol=connection.protocol,
                               server_time=_utc(self.reactor.seconds()), peer=connection.peer,
                               reason=reason, listener=connection.listener, error=error))
        if not self._current and self._drained:
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                waiter.callback(None)

    def activity(self, connection: IDeviceConnection, now: datetime) -> None:
        # Hot path: one dictionary look-up and one store. ``lastSeen`` in
        # MongoDB is written by the persistence service from the reports.
        if self._current.get(connection.imei) is connection:
            self._last_seen[connection.imei] = now

    def get(self, imei: str) -> IDeviceConnection | None:
        return self._current.get(imei)

    # --- queries ---------------------------------------------------------------
    def connections(self) -> list[IDeviceConnection]:
        """A snapshot of the current channels (safe to iterate while devices come and go)."""
        return list(self._current.values())

    @property
    def count(self) -> int:
        """How many devices are online on this instance."""
        return len(self._current)

    def last_seen(self, imei: str) -> datetime | None:
        """Time of the last frame from ``imei`` on its current channel (``None`` when offline)."""
        return self._last_seen.get(imei)

    def online_since(self, imei: str) -> datetime | None:
        return self._since.get(imei)

    # --- events ----------------------------------------------------------------
    def _event(self, kind: type, **values: Any) -> Any:
        if _INSTANCE_FIELD[kind]:
            values["instance"] = self.instance_id
        return kind(**values)

    def _emit(self, event: DeviceConnected | DeviceDisconnected) -> None:
        self.publisher.publish(event)
        written = maybeDeferred(self.sink.deliver, [event])
        self._writes.add(written)

        def settled(result: Any) -> None:
            self._writes.discard(written)
            if isinstance(result, Failure):
                log.warn("{driver} {imei} {peer}: session state not stored: {error}", driver=event.protocol,
                         imei=event.imei, peer=event.peer,
                         error=result.getErrorMessage() or result.type.__name__)

        written.addBoth(settled)

    # --- startup / shutdown --------------------------------------------------
    def reset_stale(self) -> Deferred:
        """Mark offline the devices a previous run of this instance left online.

        Deferred[int]: how many ``Veiculo`` documents changed. Matches
        ``online: true`` documents of this instance (``instance`` field, or
        none at all: written by a version without it), not connected here now,
        and not seen since this registry started (so a device that connected
        while the query was on its way is left alone).
        """
        since = _utc(self._started_at or self.reactor.seconds())
        query: dict[str, Any] = {
            "online": True,
            "$and": [
                {"$or": [{"instance": self.instance_id}, {"instance": {"$exists": False}}]},
                {"$or": [{"lastSeen": {"$lt": since}}, {"lastSeen": {"$exists": False}}]},
            ],
        }
        if self._current:
            query["IMEI"] = {"$nin": list(self._current)}
        d = maybeDeferred(self.store.collection("vehicles").update_many, query, {"$set": {"online": False}})

        def done(result: Any) -> int:
            changed = int(getattr(result, "modified_count", 0) or 0)
            log.info("{count} device(s) left online by a previous run of instance {instance} marked offline",
                     count=changed, instance=self.instance_id)
            return changed

        return d.addCallback(done)

    def startService(self) -> None:
        super().startService()
        self._started_at = self.reactor.seconds()

    def stopService(self) -> Deferred:
        super().stopService()
        return self.close_all("server shutting down")

    def close_all(self, reason: str) -> Deferred:
        """Close every channel; fires once all have detached (or after ``stop_timeout``)
        and their ``DeviceDisconnected`` events were handed to the sink."""
        drained: Deferred = Deferred()
        if self._current:
            self._drained.append(drained)
            for connection in self.connections():
                connection.close(reason)
            drained.addTimeout(self.stop_timeout, self.reactor)
        else:
            drained.callback(None)

        def written(result: Any) -> Deferred:
            if drained in self._drained:
                self._drained.remove(drained)
            if isinstance(result, Failure):
                log.warn("{count} device channel(s) still open after {timeout} s", count=len(self._current),
                         timeout=self.stop_timeout)
            pending = list(self._writes)
            return DeferredList(pending, consumeErrors=True).addCallback(lambda _: None)

        return drained.addBoth(written)
