"""The running statistics collector: counts what happens, writes it about once a minute.

Fed by the drivers (received / rejected / flagged, through
``DriverContext.stats``), by persistence (duplicates) and by the event bus:
``DeviceConnected`` (devices, and which listener a device is on),
``Position`` (stored, flagged by the quality checks, receipt-to-stored
latency and device-to-receipt delay: a report is published only once stored)
and ``CommandStatus`` (commands sent / confirmed / failed). A report or
command is counted on the listener its device last connected to; a device
not seen connecting by this instance counts under its protocol's name.
"""

from __future__ import annotations

import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Iterable

from pymongo.errors import DuplicateKeyError
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from waygps import metrics
from waygps.config import StatsConfig
from waygps.events import CommandStatus, DeviceConnected, Position
from waygps.interfaces import IStatsRecorder
from waygps.quality import (ANCIENT_TIME, FLAG, FUTURE_TIME, IMPOSSIBLE_SPEED, NO_COORDINATES, OUT_OF_RANGE,
                            ZERO_COORDINATES)
from waygps.stats.tally import COMMAND_STATUSES, Tally, day_of, histogram
from waygps.stats.writer import MAX_PENDING, Flush, flushes_of, update_of

log = Logger(namespace="waygps.stats")

# The reasons the quality checks store a report as invalid (``attributes.qualityFlag``); ``no_fix``,
# the device's own verdict, is not one.
QUALITY_FLAGS = frozenset({NO_COORDINATES, OUT_OF_RANGE, ZERO_COORDINATES, FUTURE_TIME, ANCIENT_TIME,
                           IMPOSSIBLE_SPEED})
_STORE_LATENCY = histogram("store_latency")
_DEVICE_DELAY = histogram("device_delay")
MAX_DEVICES = 1_000_000  # imei -> listener entries kept (least recently connected dropped first)
STOP_TIMEOUT = 10.0


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


@implementer(IStatsRecorder)
class StatsCollector:
    def __init__(self, config: StatsConfig, store: Any, publisher: Any, reactor: Any, instance_id: str) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher
        self.reactor = reactor
        self.prefix = f"{instance_id}/{uuid.uuid4().hex[:12]}"
        self.tally = Tally()
        self.pending: deque[Flush] = deque()
        self._seq = 0
        # imei -> listener, least recently connected first (a plain dict keeps insertion order and
        # costs less per device than an OrderedDict).
        self._listeners: dict[str, str] = {}
        self._loop: LoopingCall | None = None
        self._unsubscribe: Any = None
        self._writing: Deferred | None = None
        self._day_start = self._day_end = 0.0
        self._day_name = ""

    # --- counting (IStatsRecorder) ------------------------------------------------
    def _now(self) -> datetime:
        return _utc(self.reactor.seconds())

    def listener_of(self, imei: str, protocol: str) -> str:
        return self._listeners.get(imei) or protocol

    def _day(self, seconds: float) -> str:
        """The UTC day of reactor time ``seconds`` (worked out again only when a day ends)."""
        if not self._day_start <= seconds < self._day_end:
            start = seconds - seconds % 86400.0  # POSIX time: every UTC day is 86,400 s
            self._day_start, self._day_end, self._day_name = start, start + 86400.0, day_of(_utc(start))
        return self._day_name

    def received(self, listener: str, events: Iterable[Any]) -> None:
        n = 0
        for event in events:
            if isinstance(event, Position):
                n += 1
        if n:
            seconds = self.reactor.seconds()
            day = self._day_name if self._day_start <= seconds < self._day_end else self._day(seconds)
            self.tally.counts[(listener, day)]["received"] += n

    def rejected(self, listener: str, reason: str) -> None:
        now = self._now()
        self.tally.add(listener, now, "received")
        self.tally.reason(listener, now, "rejected", reason)

    def flagged(self, listener: str, reason: str) -> None:
        self.tally.reason(listener, self._now(), "flagged", reason)

    def duplicate(self, imei: str, protocol: str) -> None:
        self.tally.add(self.listener_of(imei, protocol), self._now(), "duplicates")

    def on_event(self, event: Any) -> None:
        if isinstance(event, Position):
            # Once per stored report: reactor seconds and the day's counts, no datetime made.
            seconds = self.reactor.seconds()
            listener = self._listeners.get(event.imei) or event.protocol
            day = self._day_name if self._day_start <= seconds < self._day_end else self._day(seconds)
            counts = self.tally.counts[(listener, day)]
            counts["stored"] += 1
            server_time = event.server_time
            _STORE_LATENCY.add(counts, seconds - server_time.timestamp())
            attributes = event.attributes
            if attributes.get("time_source") != "server":
                _DEVICE_DELAY.add(counts, (server_time - event.device_time).total_seconds())
            flag = attributes.get(FLAG)
            if flag is not None and flag in QUALITY_FLAGS:
                self.tally.reason(listener, _utc(seconds), "flagged", flag)
        elif isinstance(event, DeviceConnected):
            self._listeners.pop(event.imei, None)  # re-inserted last: the most recent
            self._listeners[event.imei] = event.listener
            while len(self._listeners) > MAX_DEVICES:
                del self._listeners[next(iter(self._listeners))]
            self.tally.device(event.listener, self._now(), event.imei)
        elif isinstance(event, CommandStatus) and event.status in COMMAND_STATUSES:
            listener = self._listeners.get(event.imei, "commands")
            self.tally.add(listener, self._now(), f"commands.{event.status}")

    # --- writing ----------------------------------------------------------------------
    def start(self) -> None:
        self._unsubscribe = self.publisher.subscribe(self.on_event)
        self._loop = LoopingCall(self.flush)
        self._loop.clock = self.reactor
        self._loop.start(self.config.flush_interval, now=False).addErrback(
            lambda f: log.failure("stats: flush loop stopped", f))

    def take(self) -> None:
        """Move the tally's counts into pending flushes (each with its id from now on)."""
        if not self.tally:
            return
        flushes = flushes_of(self.tally, self.prefix, self._seq)
        self._seq += len(flushes)
        self.tally = Tally()
        self.pending.extend(flushes)
        while len(self.pending) > MAX_PENDING:
            lost = self.pending.popleft()
            metrics.STORE_FAILURES.labels("stats_dropped").inc()
            log.error("stats: store away too long; dropping flush {id} of {listener} {day}", id=lost.id,
                      listener=lost.listener, day=lost.day)

    def flush(self) -> Deferred:
        """Write everything counted so far; fires when done (a failure is logged and retried later)."""
        if self._writing is not None:
            return self._writing
        self.take()
        if not self.pending:
            return succeed(None)
        d = self._write_pending()
        self._writing = d

        def done(result: Any) -> Any:
            self._writing = None
            return result

        return d.addBoth(done)

    @inlineCallbacks
    def _write_pending(self) -> Any:
        collection = self.store.db[self.config.collection]
        while self.pending:
            flush = self.pending[0]
            try:
                yield self.apply(collection, flush)
            except Exception as e:
                metrics.STORE_FAILURES.labels("stats").inc()
                log.warn("stats: cannot write {n} flushes yet ({error}); trying again later", n=len(self.pending),
                         error=f"{type(e).__name__}: {e}")
                return
            self.pending.popleft()

    @inlineCallbacks
    def apply(self, collection: Any, flush: Flush) -> Any:
        """Apply one flush at most once (see ``waygps.stats.writer``)."""
        query, update = update_of(flush, self._now())
        try:
            yield collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            # Either the flush is already in the document (its id filtered it out), or another
            # instance created the document at the same moment: without upsert, the update
            # applies in the second case and matches nothing in the first.
            yield collection.update_one(query, update, upsert=False)

    def stop(self) -> Deferred:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        d = self.flush()
        d.addCallback(lambda _: self.flush())  # what was counted while a write was under way
        d.addTimeout(STOP_TIMEOUT, self.reactor)
        return d.addErrback(lambda f: log.warn("stats: final flush failed: {why}", why=f.getErrorMessage()))

    def ensure_indexes(self) -> Deferred:
        from txmongo import filter as qf

        return self.store.db[self.config.collection].create_index(qf.sort(qf.ASCENDING("day") + qf.ASCENDING("listener")))
