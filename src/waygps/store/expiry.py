"""Reports past ``[retention] days`` deleted by WayGPS, a chunk at a time (``[retention] expiry``).

MongoDB expires documents through a TTL index and its own monitor. The
embedded store's TTL pass instead reads every document of the collection
while it holds the store's lock, once a minute: with a history of millions of
reports every write would wait seconds each minute. So on the embedded store
(``expiry = "auto"``, or ``"waygps"`` anywhere) ``dataServidor`` has a plain
index and this service deletes what is older than the retention, every
``interval`` seconds: it finds, through that index, the ``dataServidor`` of the
``chunk``-th oldest expired report and deletes everything before it with one
ranged ``delete_many``, again until nothing expired is left, giving the event
loop a turn between chunks, so reports keep flowing while a backlog goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from txmongo import filter as qf

from waygps import metrics
from waygps.documents import read_time

log = Logger(namespace="waygps.store.expiry")

CHUNK = 1000
_OLDEST_FIRST = qf.sort(qf.ASCENDING("dataServidor"))


class HistoryExpiry(Service):
    name = "history-expiry"

    def __init__(self, store: Any, days: int, interval: float, reactor: Any, chunk: int = CHUNK) -> None:
        self.store = store
        self.days = days
        self.interval = interval
        self.chunk = chunk
        self.reactor = reactor
        self._loop = LoopingCall(self._pass)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        log.info("retention: WayGPS deletes reports received more than {days} days ago, every {interval:g} s "
                 "(retention.expiry)", days=self.days, interval=self.interval)
        # The loop waits for a pass to end before it counts the next interval: passes never overlap.
        self._stopped = self._loop.start(self.interval, now=False)

    def stopService(self) -> Deferred | None:
        super().stopService()
        if not self._loop.running:
            return None
        self._loop.stop()
        return self._stopped  # fires at once, or when a running pass ends (after its current chunk)

    def _pass(self) -> Deferred:
        d = self.expire()
        d.addErrback(lambda f: log.failure("retention: expiry pass failed; trying again later", f))
        return d

    @inlineCallbacks
    def expire(self) -> Any:
        """Delete every report received more than ``days`` ago; fires with how many went."""
        positions = self.store.collection("positions")
        cutoff = datetime.fromtimestamp(self.reactor.seconds(), timezone.utc) - timedelta(days=self.days)
        deleted = 0
        while True:
            boundary = yield self._boundary(positions, cutoff)
            if boundary is None:
                break
            bound, inclusive = boundary
            result = yield positions.delete_many({"dataServidor": {"$lte" if inclusive else "$lt": bound}})
            count = result.deleted_count
            deleted += count
            metrics.HISTORY_EXPIRED.inc(count)
            if count == 0 or not self.running:
                break
            yield deferLater(self.reactor, 0, lambda: None)  # the event loop's turn
        if deleted:
            log.info("retention: {count} reports received before {cutoff} deleted", count=deleted,
                     cutoff=cutoff.isoformat())
        return deleted

    @inlineCallbacks
    def _boundary(self, positions: Any, cutoff: datetime) -> Any:
        """(bound, inclusive) of the next chunk, or None when nothing before ``cutoff`` is left."""
        expired = {"dataServidor": {"$lt": cutoff}}
        oldest = yield positions.find_one(expired, {"dataServidor": 1}, sort=_OLDEST_FIRST)
        if oldest is None:
            return None
        found = yield positions.find(expired, {"dataServidor": 1}, sort=_OLDEST_FIRST,
                                     skip=self.chunk - 1, limit=1)
        if not found:
            return cutoff, False  # fewer than a chunk left: all of them
        bound = found[0]["dataServidor"]
        if read_time(bound) <= read_time(oldest["dataServidor"]):
            return bound, True  # a chunk received at one instant: that instant, whole
        return bound, False

