"""The persistence service: what "stored" means before a device is acknowledged.

Two lanes share one MongoDB:

* **Reports** (the acknowledgement path). ``deliver()`` queues the position
  reports of a call as one *entry*; entries are flushed as one unordered
  ``insert_many`` into ``DadosVeiculo`` when ``batch_size`` documents wait or
  the oldest has waited ``batch_interval_ms``. One batch is in flight at a
  time, so batches are stored in delivery order. When MongoDB acknowledges a
  batch (with the configured write concern, journaled), its events are
  announced (handed to the ``stored`` callable: this module only stores; see
  :class:`waygps.bus.LocalPublisher`), *then* the entries' Deferreds fire:
  nothing reaches a dashboard or a device before it is stored. A duplicate ``_id`` (a re-sent report)
  counts as stored.
* **Vehicles** (``Veiculo``). Each stored report, heartbeat and session event is
  folded into one :class:`~waygps.vehicles.VehicleDelta` per device; the
  deltas are written as one unordered ``bulk_write`` of upserts whenever the
  report lane is idle, and at the latest ``VEHICLE_MIN_LAG`` (or nineteen times
  the duration of the previous vehicle write, whichever is longer) after the
  oldest delta appeared. So under light load ``Veiculo`` follows each batch at
  once (unless the previous vehicle write ended less than nineteen times its
  duration ago: a fleet that waits for its acks empties the lane after every
  batch), and under saturation the per-device upserts (on the embedded store
  about ten times dearer than an insert) coalesce instead of cutting the
  report throughput (they use at most about a twentieth of the store's time). Heartbeats and session events
  need no report write: their ``deliver()`` fires as soon as they are folded
  (memory bounded by the number of devices), and they are written when the
  store can take them, even after an outage. Session events are not announced
  here: the session registry publishes them itself.

Outages: an entry's Deferred fails with :class:`StoreUnavailable` once it has
waited ``store_timeout`` (the device keeps its data and re-sends it); a failed
batch is retried with exponential backoff up to ``reconnect_max_delay`` and is
dropped only when every entry in it has been answered (then the devices own
the data again). A late success of a batch whose entries already failed
announces its reports (they are stored) but fires nothing twice.

Back-pressure: above ``queue_limit`` waiting documents every watched producer
is paused; below half of it they resume; a ``deliver()`` that would take the
queue past twice the limit fails at once with :class:`QueueFull`.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from bson.errors import InvalidDocument, InvalidStringData
import bson
from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from waygps import metrics
from waygps.config import Config, MongoConfig
from waygps.documents import position_document
from waygps.events import Alarm, Position, StoreStatus
from waygps.indexes import ensure_indexes
from waygps.interfaces import IEventPublisher, INotifyingSink
from waygps.quality import assess
from waygps.stats.recorder import NULL_STATS
from waygps.vehicles import VehicleDelta, touches_vehicle

log = Logger(namespace="waygps.persistence")

# To move to waygps.metrics (one list of metrics).
REPORTS_FLAGGED = metrics.REPORTS_FLAGGED

DUPLICATE_KEY = 11000
BACKOFF_INITIAL = 0.1
HARD_CAP_FACTOR = 2
VEHICLE_MIN_LAG = 2.0
VEHICLE_LAG_FACTOR = 19.0
_UNENCODABLE = (InvalidDocument, InvalidStringData, OverflowError, TypeError, ValueError)


class StoreUnavailable(Exception):
    """MongoDB did not acknowledge the reports within ``store_timeout``."""


class QueueFull(Exception):
    """The write queue is at its hard bound; the reports were not taken."""


class ReportRejected(Exception):
    """MongoDB refused a document for good (validation, size...)."""


class ServiceStopped(Exception):
    """The persistence service has stopped."""


def write_concern(mongo: MongoConfig, journal: bool = True) -> WriteConcern:
    """The configured ``w`` (``majority`` or a node count), journaled for reports."""
    value = mongo.write_concern
    w: int | str = "majority" if value == "majority" else int(value)
    return WriteConcern(w=w, j=True) if journal else WriteConcern(w=w)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class _Entry:
    """The reports of one ``deliver()`` or ``submit()`` call."""

    __slots__ = ("events", "positions", "documents", "notify", "deferred", "enqueued", "deadline", "settled",
                 "queued", "rejected")

    def __init__(self, events: tuple, positions: list[tuple[int, Position]], documents: list[dict],
                 enqueued: float, deadline: float, notify: Callable[[Exception | None], None] | None) -> None:
        self.events = events
        self.positions = positions
        self.documents = documents
        self.notify = notify
        self.deferred: Deferred | None = Deferred() if notify is None else None
        self.enqueued = enqueued
        self.deadline = deadline
        self.settled = False
        self.queued = True
        self.rejected: set[str] = set()

    def settle(self, failure: Exception | None) -> None:
        if self.settled:
            return
        self.settled = True
        notify = self.notify
        if notify is not None:
            _notify(notify, failure)
        elif failure is None:
            self.deferred.callback(None)  # type: ignore[union-attr]
        else:
            self.deferred.errback(Failure(failure))  # type: ignore[union-attr]


def _notify(notify: Callable[[Exception | None], None], failure: Exception | None) -> None:
    try:
        notify(failure)
    except Exception:
        log.failure("persistence: a delivery's notify callable raised")


def _answer(notify: Callable[[Exception | None], None] | None, error: Exception | None) -> Deferred | None:
    """An answer given at once: a fired Deferred for ``deliver``, a call of ``notify`` for ``submit``."""
    if notify is None:
        return succeed(None) if error is None else fail(error)
    _notify(notify, error)
    return None


class _Batch:
    __slots__ = ("entries", "documents", "owners", "attempts", "size")

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries
        self.documents: list[dict] = []
        self.owners: list[_Entry] = []
        documents, owners = self.documents, self.owners
        size = 0
        for entry in entries:
            size += len(entry.documents)
            rejected = entry.rejected
            for doc in entry.documents:
                if not rejected or doc["_id"] not in rejected:
                    documents.append(doc)
                    owners.append(entry)
        self.attempts = 0
        self.size = size

    def answered(self) -> bool:
        return all(e.settled for e in self.entries)


@implementer(INotifyingSink)
class PersistenceService(Service):
    name = "persistence"
    stats: Any = NULL_STATS  # IStatsRecorder, set by the server

    def __init__(self, store: Any, config: Config,
                 stored: Callable[[Iterable[Any]], None] | IEventPublisher, reactor: Any) -> None:
        """``stored`` is called with the events of each stored batch (an event bus is wrapped in
        :class:`waygps.bus.LocalPublisher`)."""
        self.store = store
        self.config = config
        if hasattr(stored, "publish"):
            from waygps.bus import LocalPublisher

            stored = LocalPublisher(stored)
        self.announce: Callable[[Iterable[Any]], None] = stored  # type: ignore[assignment]
        self.reactor = reactor
        p = config.persistence
        self.batch_size = p.batch_size
        self.batch_interval = p.batch_interval_ms / 1000.0
        self.queue_limit = p.queue_limit
        self.hard_cap = p.queue_limit * HARD_CAP_FACTOR
        self.store_timeout = p.store_timeout
        self.max_delay = max(p.reconnect_max_delay, BACKOFF_INITIAL)
        self._report_wc = write_concern(config.mongodb)
        self._vehicle_wc = write_concern(config.mongodb, journal=False)
        # report lane
        self._queue: deque[_Entry] = deque()
        self._waiting: deque[_Entry] = deque()  # entries not yet answered, oldest first
        self._pending = 0  # documents queued or in flight
        self._inflight: _Batch | None = None
        # While a stored batch is announced: completions that arrived meanwhile, finished after it.
        self._announcing: list[tuple[_Batch, float, set[int], list[dict]]] | None = None
        self._flush_call: Any = None
        self._retry_call: Any = None
        self._expiry_call: Any = None
        # vehicle lane
        self._seq = 0
        self._dirty: dict[str, VehicleDelta] = {}
        self._dirty_since: float | None = None
        self._floor: dict[str, int] = {}
        self._vehicle_inflight: dict[str, VehicleDelta] | None = None
        self._vehicle_call: Any = None
        self._vehicle_attempts = 0
        self._vehicle_duration = 0.0
        self._vehicle_written_at = float("-inf")
        self.vehicle_stats = {"writes": 0, "updates": 0, "seconds": 0.0}
        # back-pressure and life cycle
        self._producers: set[Any] = set()
        self._paused = False
        self._stopping = False
        self._stopped = False
        self._stop_waiters: list[Deferred] = []
        self._drain_waiters: list[Deferred] = []
        self._stop_timeout_call: Any = None
        self._store_down = False  # published as StoreStatus on each change

    # --- life cycle -----------------------------------------------------------
    def prepare(self) -> Deferred:
        """Create the contract's indexes and the retention TTL (before listeners start)."""
        return ensure_indexes(self.store, self.config)

    def startService(self) -> None:
        Service.startService(self)
        metrics.STORE_QUEUE.set_function(lambda: self._pending)  # read when scraped, not set per report
        self._stopping = self._stopped = False
        self._schedule()
        self._kick_vehicles()

    def stopService(self) -> Deferred:
        """Flush both lanes; fires when done, fails after ``store_timeout`` (then unanswered reports fail)."""
        Service.stopService(self)
        self._stopping = True
        d: Deferred = Deferred()
        self._stop_waiters.append(d)
        if self._stop_timeout_call is None:
            self._stop_timeout_call = self.reactor.callLater(self.store_timeout, self._stop_timed_out)
        log.info("persistence: stopping; flushing {reports} reports and {vehicles} vehicle updates",
                 reports=self._pending, vehicles=len(self._dirty))
        self._cancel(self._flush_call)
        self._flush_call = None
        self._schedule()
        self._kick_vehicles()
        self._check_idle()
        return d

    def _stop_timed_out(self) -> None:
        self._stop_timeout_call = None
        left_reports, left_vehicles = self._pending, len(self._dirty) + len(self._vehicle_inflight or ())
        log.error("persistence: store did not take the last {reports} reports and {vehicles} vehicle "
                  "updates within {timeout}s; giving up", reports=left_reports, vehicles=left_vehicles,
                  timeout=self.store_timeout)
        self._finish_stop(StoreUnavailable(f"shutdown: store did not answer within {self.store_timeout}s"))

    def _finish_stop(self, error: Exception | None) -> None:
        self._stopped = True
        self._stopping = False
        for call in (self._flush_call, self._retry_call, self._expiry_call, self._vehicle_call,
                     self._stop_timeout_call):
            self._cancel(call)
        self._flush_call = self._retry_call = self._expiry_call = self._vehicle_call = None
        self._stop_timeout_call = None
        for entry in list(self._waiting):
            if not entry.settled:
                metrics.STORE_FAILURES.labels("shutdown").inc()
                entry.settle(ServiceStopped("stopped before the reports were stored"))
        self._waiting.clear()
        self._queue.clear()
        self._inflight = None
        self._vehicle_inflight = None
        self._vehicle_attempts = 0
        self._pending = 0
        self._paused = False
        metrics.STORE_PAUSED.set(0)
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            if error is None:
                d.callback(None)
            else:
                d.errback(Failure(error))
        self._notify_drained()

    # --- IEventSink ----------------------------------------------------------------
    def deliver(self, events: Iterable[Any]) -> Deferred:
        return self._take(events, None)  # type: ignore[return-value]

    def submit(self, events: Iterable[Any], notify: Callable[[Exception | None], None]) -> None:
        self._take(events, notify)

    def _take(self, events: Iterable[Any], notify: Callable[[Exception | None], None] | None) -> Deferred | None:
        """``deliver`` (``notify`` None: answers with a Deferred) and ``submit`` (answers through ``notify``)."""
        if type(events) is not tuple:
            events = tuple(events)
        if self._stopped:
            return _answer(notify, ServiceStopped("the persistence service is stopped"))
        seconds = self.reactor.seconds()
        now = _utc(seconds)
        positions: list[tuple[int, Position]] = []
        documents: list[dict] = []
        others = False  # events other than reports that move the vehicle
        stored_events = events
        for index, event in enumerate(events):
            if isinstance(event, Position):
                assessed = self._assess(event, now)
                if assessed is not event:
                    if stored_events is events:
                        stored_events = list(events)
                    stored_events[index] = assessed  # type: ignore[index]
                self._seq += 1
                positions.append((self._seq, assessed))
                documents.append(position_document(assessed))
            elif touches_vehicle(event):
                others = True
        if documents and self._pending + len(documents) > self.hard_cap:
            metrics.STORE_FAILURES.labels("queue_full").inc()
            first = positions[0][1]
            log.warn("{driver} {imei}: {count} reports refused, write queue full ({pending} waiting)",
                     driver=first.protocol, imei=first.imei, count=len(documents), pending=self._pending)
            return _answer(notify, QueueFull(f"write queue full ({self._pending} reports waiting)"))
        if others:
            for event in stored_events:
                if touches_vehicle(event) and not isinstance(event, Position):
                    self._fold(event, self._next_seq())
        if not documents:
            # Heartbeats, sessions, alarms, command answers: nothing to insert.
            self._publish(stored_events, skip=frozenset())
            self._kick_vehicles()
            return _answer(notify, None)
        entry = _Entry(stored_events if stored_events is events else tuple(stored_events), positions, documents,
                       seconds, seconds + self.store_timeout, notify)
        self._queue.append(entry)
        self._waiting.append(entry)
        self._pending += len(documents)
        # (the three checks below run per delivery: each is called only when it has something to do)
        if self._pending > self.queue_limit and not self._paused:
            self._check_pressure()
        if self._expiry_call is None:
            self._arm_expiry()
        if self._inflight is None:
            self._schedule()
        return entry.deferred

    def watch(self, producer: Any) -> None:
        self._producers.add(producer)
        if self._paused:
            self._pause(producer)

    def unwatch(self, producer: Any) -> None:
        self._producers.discard(producer)

    def flush(self) -> Deferred:
        """Send what waits now; fires when both lanes are empty, fails after ``store_timeout``.

        Used at shutdown (pending acknowledgements go out before connections
        close) and by tests that read ``Veiculo``.
        """
        d = self.drained()
        d.addTimeout(self.store_timeout, self.reactor)

        def timed_out(failure: Failure) -> Failure:
            if failure.check(TimeoutError, defer.TimeoutError):
                return Failure(StoreUnavailable(f"store did not take the queue within {self.store_timeout}s"))
            return failure

        return d.addErrback(timed_out)

    def drained(self) -> Deferred:
        """Fires when both lanes are empty (every report and vehicle update written or answered)."""

        def forget(d: Deferred) -> None:
            if d in self._drain_waiters:
                self._drain_waiters.remove(d)

        d: Deferred = Deferred(forget)
        self._drain_waiters.append(d)
        self._cancel(self._flush_call)
        self._flush_call = None
        self._schedule(force=True)
        self._kick_vehicles(force=True)
        self._notify_drained()
        return d

    # --- quality ------------------------------------------------------------------
    def _assess(self, position: Position, now: datetime) -> Position:
        assessed, flagged = assess(position, now)
        if flagged is not None:
            REPORTS_FLAGGED.labels(position.protocol, flagged).inc()
            log.info("{driver} {imei}: report {id} stored as invalid: {reason}", driver=position.protocol,
                     imei=position.imei, id=position.document_id, reason=flagged)
        return assessed

    # --- report lane ----------------------------------------------------------------
    def _schedule(self, force: bool = False) -> None:
        if self._inflight is not None or not self._queue or self._stopped:
            return
        if not self.running and not self._stopping and not force:
            return
        queued = self._pending  # nothing in flight: every pending document is queued
        oldest = self._queue[0].enqueued
        due = oldest + self.batch_interval
        if force or self._stopping or queued >= self.batch_size or self.reactor.seconds() >= due:
            self._cancel(self._flush_call)
            self._flush_call = None
            self._send_batch()
        elif self._flush_call is None:
            self._flush_call = self.reactor.callLater(max(0.0, due - self.reactor.seconds()), self._flush_due)

    def _flush_due(self) -> None:
        self._flush_call = None
        self._schedule(force=True)

    def _send_batch(self) -> None:
        entries: list[_Entry] = []
        count = 0
        while self._queue:
            entry = self._queue[0]
            if entries and count + len(entry.documents) > self.batch_size:
                break
            self._queue.popleft()
            entry.queued = False
            entries.append(entry)
            count += len(entry.documents)
        batch = _Batch(entries)
        self._inflight = batch
        self._attempt(batch)

    def _attempt(self, batch: _Batch) -> None:
        batch.attempts += 1
        started = self.reactor.seconds()
        if not batch.documents:
            self._complete(batch, started, set(), [])
            return
        collection = self.store.collection("positions").with_options(write_concern=self._report_wc)
        d = maybeDeferred(collection.insert_many, batch.documents, ordered=False)
        d.addCallbacks(self._inserted, self._insert_failed, callbackArgs=(batch, started),
                       errbackArgs=(batch, started))
        d.addErrback(lambda f: log.failure("persistence: batch bookkeeping failed", f))

    def _inserted(self, _: Any, batch: _Batch, started: float) -> None:
        if batch is not self._inflight:
            return  # stopped meanwhile
        self._complete(batch, started, set(), [])

    def _insert_failed(self, failure: Failure, batch: _Batch, started: float) -> None:
        if batch is not self._inflight:
            return
        error = failure.value
        if isinstance(error, BulkWriteError):
            details = error.details or {}
            write_errors = details.get("writeErrors", [])
            if details.get("writeConcernErrors"):
                self._retry(batch, "write_concern", str(details["writeConcernErrors"][0].get("errmsg", "")))
                return
            duplicates = {e["index"] for e in write_errors if e.get("code") == DUPLICATE_KEY}
            refused = [e for e in write_errors if e.get("code") != DUPLICATE_KEY]
            self._complete(batch, started, duplicates, refused)
            return
        if isinstance(error, _UNENCODABLE):
            self._drop_unencodable(batch)
            return
        self._retry(batch, "unavailable", f"{type(error).__name__}: {error}")

    def _drop_unencodable(self, batch: _Batch) -> None:
        """A document BSON cannot carry: refuse its report, send the rest again at once."""
        for doc, owner in zip(batch.documents, batch.owners):
            try:
                bson.encode(doc)
            except _UNENCODABLE as e:
                owner.rejected.add(doc["_id"])
                metrics.STORE_FAILURES.labels("unencodable").inc()
                log.error("{driver} {imei}: report {id} cannot be encoded for MongoDB ({error}); refused",
                          driver=doc.get("protocol"), imei=doc.get("IMEI"), id=doc["_id"], error=e)
        rebuilt = _Batch(batch.entries)
        rebuilt.attempts = batch.attempts - 1
        if len(rebuilt.documents) == len(batch.documents):
            # Nothing found to blame: treat it as a store problem rather than loop at once.
            self._retry(batch, "unavailable", "insert failed while encoding")
            return
        self._inflight = rebuilt
        self._attempt(rebuilt)

    def _retry(self, batch: _Batch, reason: str, detail: str) -> None:
        metrics.STORE_FAILURES.labels(reason).inc()
        if not self._store_down:
            self._store_down = True
            self._publish_store_status(False, detail)
        delay = min(self.max_delay, BACKOFF_INITIAL * (2 ** (batch.attempts - 1)))
        log.warn("persistence: batch of {count} reports not stored (attempt {attempt}: {detail}); "
                 "retrying in {delay:.1f}s", count=len(batch.documents), attempt=batch.attempts,
                 detail=detail, delay=delay)
        self._retry_call = self.reactor.callLater(delay, self._retry_due, batch)

    def _retry_due(self, batch: _Batch) -> None:
        self._retry_call = None
        if batch is not self._inflight:
            return
        if batch.answered() and not self._stopping:
            # Every device was told "not stored" and keeps its data: drop the batch.
            log.info("persistence: dropping a batch of {count} reports whose devices were all answered",
                     count=len(batch.documents))
            self._inflight = None
            self._release(batch)
            self._after_batch()
            return
        self._attempt(batch)

    def _complete(self, batch: _Batch, started: float, duplicates: set[int], refused: list[dict]) -> None:
        if self._announcing is not None:
            # The store answered the next batch synchronously (test fakes do) while this service was
            # still announcing the previous one: finish it afterwards, so batches finish in order.
            self._announcing.append((batch, started, duplicates, refused))
            return
        self._inflight = None
        if self._store_down:
            self._store_down = False
            self._publish_store_status(True, "")
        metrics.STORE_BATCH_SECONDS.observe(max(0.0, self.reactor.seconds() - started))
        refused_ids: set[str] = set()
        for error in refused:
            index = error.get("index", -1)
            if not 0 <= index < len(batch.documents):
                continue
            doc, owner = batch.documents[index], batch.owners[index]
            owner.rejected.add(doc["_id"])
            refused_ids.add(doc["_id"])
            metrics.STORE_FAILURES.labels("rejected").inc()
            log.error("{driver} {imei}: report {id} refused by MongoDB (code {code}: {message})",
                      driver=doc.get("protocol"), imei=doc.get("IMEI"), id=doc["_id"], code=error.get("code"),
                      message=error.get("errmsg", ""))
        old_copies: set[str] = set()
        inserted: set[str] = set()  # ids this batch inserted: a copy of one of them in the batch is new
        stored: dict[str, int] = {}  # per driver: one counter update per batch, not per report
        if not refused_ids and not duplicates:
            # The usual batch: everything inserted, no copy of an earlier report.
            for doc in batch.documents:
                protocol = doc["protocol"]
                stored[protocol] = stored.get(protocol, 0) + 1
        for index, doc in enumerate(batch.documents if refused_ids or duplicates else ()):
            if refused_ids and doc["_id"] in refused_ids:
                continue
            if index in duplicates:
                if batch.attempts == 1:
                    old_copies.add(doc["_id"])
                    metrics.DUPLICATES.labels(doc["protocol"]).inc()
                    self.stats.duplicate(doc["IMEI"], doc["protocol"])
            else:
                inserted.add(doc["_id"])
                stored[doc["protocol"]] = stored.get(doc["protocol"], 0) + 1
        # A report whose re-sent copy shares the batch: inserted once, published once.
        resent_here = old_copies & inserted
        old_copies -= inserted
        for protocol, count in stored.items():
            metrics.REPORTS_STORED.labels(protocol).inc(count)
        if old_copies:
            log.debug("persistence: {count} re-sent reports were already stored", count=len(old_copies))
        self._release(batch)
        # Stored reports move the vehicles (folding a re-sent copy again changes nothing).
        self._fold_positions(batch)
        # The next batch goes to the store now: it inserts while this one is announced and acknowledged.
        self._announcing = finished = []
        try:
            self._schedule()
            self._announce(batch, old_copies, resent_here)
        finally:
            self._announcing = None
        for later in finished:
            if later[0] is self._inflight:  # (not stopped meanwhile)
                self._complete(*later)
        self._after_batch()

    def _fold_positions(self, batch: _Batch) -> None:
        """``_fold`` of every report ``batch`` stored, written out (it runs for every stored report)."""
        dirty = self._dirty
        for entry in batch.entries:
            rejected = entry.rejected
            for seq, position in entry.positions:
                if rejected and position.document_id in rejected:
                    continue
                delta = dirty.get(position.imei) or self._new_delta(position.imei)
                delta.add_position(position, seq)

    def _announce(self, batch: _Batch, old_copies: set[str], resent_here: set[str]) -> None:
        """Publish what ``batch`` stored and answer its devices."""
        if not old_copies and not resent_here and not any(entry.rejected for entry in batch.entries):
            # The usual batch: every event of every entry, in one call.
            self._publish([event for entry in batch.entries for event in entry.events], skip=frozenset())
        else:
            announced: set[str] = set()
            for entry in batch.entries:
                self._publish(entry.events, skip=old_copies | entry.rejected | announced)
                if resent_here:
                    announced.update(e.document_id for e in entry.events
                                     if isinstance(e, Position) and e.document_id in resent_here)
        for entry in batch.entries:
            if entry.rejected:
                entry.settle(ReportRejected(f"{len(entry.rejected)} report(s) refused by MongoDB"))
            else:
                entry.settle(None)

    def _release(self, batch: _Batch) -> None:
        self._pending -= batch.size
        self._check_pressure()

    def _after_batch(self) -> None:
        while self._waiting and self._waiting[0].settled:
            self._waiting.popleft()
        self._schedule()
        self._kick_vehicles()
        self._check_idle()

    # --- timeouts -------------------------------------------------------------------
    def _arm_expiry(self) -> None:
        if self._expiry_call is not None or not self._waiting:
            return
        delay = max(0.0, self._waiting[0].deadline - self.reactor.seconds())
        self._expiry_call = self.reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry_call = None
        now = self.reactor.seconds()
        expired = 0
        while self._waiting and (self._waiting[0].settled or self._waiting[0].deadline <= now):
            entry = self._waiting.popleft()
            if entry.settled:
                continue
            expired += 1
            if entry.queued:
                # Not sent yet: forget it (entries expire in queue order, so it is the head).
                if self._queue and self._queue[0] is entry:
                    self._queue.popleft()
                else:
                    self._queue.remove(entry)
                entry.queued = False
                self._pending -= len(entry.documents)
            metrics.STORE_FAILURES.labels("timeout").inc()
            entry.settle(StoreUnavailable(f"not stored within {self.store_timeout}s"))
        if expired:
            log.warn("persistence: {count} deliveries not stored within {timeout}s; devices not acknowledged",
                     count=expired, timeout=self.store_timeout)
            if not self._store_down:  # a store that does not answer at all is unavailable too
                self._store_down = True
                self._publish_store_status(False, f"not stored within {self.store_timeout}s")
            self._check_pressure()
            if self._flush_call is not None and not self._queue:
                self._cancel(self._flush_call)
                self._flush_call = None
            self._check_idle()
        self._arm_expiry()

    # --- back-pressure ----------------------------------------------------------------
    def _check_pressure(self) -> None:
        if not self._paused and self._pending > self.queue_limit:
            self._paused = True
            metrics.STORE_PAUSED.set(1)
            log.warn("persistence: {pending} reports waiting (limit {limit}); pausing {count} device readers",
                     pending=self._pending, limit=self.queue_limit, count=len(self._producers))
            for producer in list(self._producers):
                self._pause(producer)
        elif self._paused and self._pending <= self.queue_limit // 2:
            self._paused = False
            metrics.STORE_PAUSED.set(0)
            log.info("persistence: queue drained to {pending}; resuming {count} device readers",
                     pending=self._pending, count=len(self._producers))
            for producer in list(self._producers):
                try:
                    producer.resumeProducing()
                except Exception:
                    log.failure("persistence: resumeProducing failed on {producer!r}", producer=producer)

    def _pause(self, producer: Any) -> None:
        try:
            producer.pauseProducing()
        except Exception:
            log.failure("persistence: pauseProducing failed on {producer!r}", producer=producer)

    # --- vehicle lane -------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _fold(self, event: Any, seq: int) -> None:
        delta = self._dirty.get(event.imei) or self._new_delta(event.imei)
        delta.add(event, seq)

    def _new_delta(self, imei: str) -> VehicleDelta:
        """The pending ``Veiculo`` change of a device not yet dirty, above what was already written."""
        delta = self._dirty[imei] = VehicleDelta(imei)
        delta.online_seq = delta.protocol_seq = self._floor.get(imei, -1)
        if self._dirty_since is None:
            self._dirty_since = self.reactor.seconds()
        return delta

    def _kick_vehicles(self, force: bool = False) -> None:
        if not self._dirty or self._vehicle_inflight is not None or self._stopped:
            return
        # Write at once when the report lane leaves the store to us (unless the last vehicle write
        # ended too recently: a closed-loop fleet empties the lane after every batch); else within the lag.
        urgent = force or self._stopping or (
            self._inflight is None and not self._queue
            and self.reactor.seconds() - self._vehicle_written_at >= VEHICLE_LAG_FACTOR * self._vehicle_duration)
        if self._vehicle_call is not None:
            if self._vehicle_attempts or not urgent:
                return  # a retry keeps its backoff; a lag timer is overtaken only when urgent
            self._cancel(self._vehicle_call)
            self._vehicle_call = None
        if urgent:
            self._write_vehicles()
            return
        lag = max(VEHICLE_MIN_LAG, VEHICLE_LAG_FACTOR * self._vehicle_duration)
        since = self._dirty_since if self._dirty_since is not None else self.reactor.seconds()
        self._vehicle_call = self.reactor.callLater(max(0.0, since + lag - self.reactor.seconds()),
                                                    self._vehicle_due)

    def _vehicle_due(self) -> None:
        self._vehicle_call = None
        if self._dirty and self._vehicle_inflight is None:
            self._write_vehicles()

    def _write_vehicles(self) -> None:
        deltas, self._dirty, self._dirty_since = self._dirty, {}, None
        operations = []
        imeis = []
        for imei, delta in deltas.items():
            self._floor[imei] = max(self._floor.get(imei, -1), delta.online_seq, delta.protocol_seq)
            operation = delta.update()
            if operation is not None:
                operations.append(operation)
                imeis.append(imei)
        if not operations:
            self._check_idle()
            return
        self._vehicle_inflight = deltas
        self._vehicle_attempts += 1
        started = self.reactor.seconds()
        collection = self.store.collection("vehicles").with_options(write_concern=self._vehicle_wc)
        d = maybeDeferred(collection.bulk_write, operations, ordered=False)
        d.addCallbacks(self._vehicles_written, self._vehicles_failed, callbackArgs=(deltas, started),
                       errbackArgs=(deltas, started, imeis))
        d.addErrback(lambda f: log.failure("persistence: vehicle bookkeeping failed", f))

    def _vehicles_written(self, _: Any, deltas: dict[str, VehicleDelta], started: float) -> None:
        if deltas is not self._vehicle_inflight:
            return
        self._vehicle_inflight = None
        self._vehicle_attempts = 0
        self._vehicle_written_at = self.reactor.seconds()
        self._vehicle_duration = max(0.0, self._vehicle_written_at - started)
        self.vehicle_stats["writes"] += 1
        self.vehicle_stats["updates"] += len(deltas)
        self.vehicle_stats["seconds"] += self._vehicle_duration
        self._kick_vehicles()
        self._check_idle()

    def _vehicles_failed(self, failure: Failure, deltas: dict[str, VehicleDelta], started: float,
                         imeis: list[str]) -> None:
        if deltas is not self._vehicle_inflight:
            return
        self._vehicle_inflight = None
        error = failure.value
        again = deltas
        if isinstance(error, BulkWriteError) and not (error.details or {}).get("writeConcernErrors"):
            again = {}
            for item in (error.details or {}).get("writeErrors", []):
                index = item.get("index", -1)
                if not 0 <= index < len(imeis):
                    continue
                imei = imeis[index]
                if item.get("code") == DUPLICATE_KEY:
                    # Two upserts of a new device raced (another instance): the retry finds it.
                    again[imei] = deltas[imei]
                else:
                    metrics.STORE_FAILURES.labels("vehicle_rejected").inc()
                    log.error("persistence: Veiculo update of {imei} refused (code {code}: {message})",
                              imei=imei, code=item.get("code"), message=item.get("errmsg", ""))
            if not again:
                self._vehicle_attempts = 0
                self._kick_vehicles()
                self._check_idle()
                return
        else:
            metrics.STORE_FAILURES.labels("vehicle_unavailable").inc()
        # Put the unwritten deltas back before anything that came since.
        for imei, later in self._dirty.items():
            if imei in again:
                again[imei].merge(later)
            else:
                again[imei] = later
        self._dirty = again
        self._dirty_since = started if self._dirty_since is None else min(started, self._dirty_since)
        delay = min(self.max_delay, BACKOFF_INITIAL * (2 ** (self._vehicle_attempts - 1)))
        log.warn("persistence: Veiculo updates of {count} devices not written ({error}); retrying in "
                 "{delay:.1f}s", count=len(again), error=f"{type(error).__name__}: {error}"[:300],
                 delay=delay)
        self._cancel(self._vehicle_call)
        self._vehicle_call = self.reactor.callLater(delay, self._vehicle_due)

    # --- publication and idleness ----------------------------------------------------------
    def _publish(self, events: Iterable[Any], skip: frozenset[str] | set[str]) -> None:
        """Hand what was stored (less refused and old copies) to ``announce``."""
        if skip:
            events = [event for event in events
                      if not (isinstance(event, Position) and event.document_id in skip)
                      and not (isinstance(event, Alarm) and event.position_id in skip)]
        try:
            self.announce(events)
        except Exception:
            log.failure("persistence: announcing {count} stored events failed", count=len(tuple(events)))

    def _publish_store_status(self, available: bool, detail: str) -> None:
        try:
            self.announce([StoreStatus(available=available, time=_utc(self.reactor.seconds()), detail=detail[:300])])
        except Exception:
            log.failure("persistence: publishing the store status failed")

    def _idle(self) -> bool:
        return (self._inflight is None and not self._queue and not self._dirty
                and self._vehicle_inflight is None)

    def _check_idle(self) -> None:
        if not self._idle():
            return
        if self._stopping and not self._stopped:
            log.info("persistence: queue flushed")
            self._finish_stop(None)
            return
        self._notify_drained()

    def _notify_drained(self) -> None:
        if self._drain_waiters and (self._idle() or self._stopped):
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(None)

    @staticmethod
    def _cancel(call: Any) -> None:
        if call is not None and call.active():
            call.cancel()

    # --- introspection (status, tests) -----------------------------------------------------------
    @property
    def pending(self) -> int:
        """Reports queued or in flight."""
        return self._pending

    @property
    def paused(self) -> bool:
        return self._paused
