"""Rejected and odd frames kept for diagnosis: the ``FramesRejeitados`` capped collection.

An integrator facing new firmware needs the bytes WayGPS could not decode (or
decoded only by the shape of a position block). The device adapter hands each
such frame to :meth:`RejectedFrames.offer`, which only appends to a bounded
queue and returns: writing happens later, one batch at a time, and never
touches an acknowledgement or the report lane. A full queue or a store error
drops frames with a counter and a (rate-limited) log line, never more.

The collection is capped (``[rejected_frames] size_mb``): the oldest frames
go first. ``waygps rejected`` reads it back.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

from attrs import frozen
from pymongo.errors import OperationFailure
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from waygps import metrics
from waygps.config import Config, RejectedFramesConfig

log = Logger(namespace="waygps.rejected")

BATCH = 100
NAMESPACE_EXISTS = 48
TIME_INDEX = (("time", -1),)


@frozen
class RejectedFrame:
    """One frame a driver threw away or kept only as odd."""

    time: datetime
    listener: str
    driver: str
    imei: str | None
    peer: str
    reason: str
    data: bytes


def document(frame: RejectedFrame, max_bytes: int) -> dict[str, Any]:
    """The ``FramesRejeitados`` document of ``frame``: the bytes as hex, capped at ``max_bytes``."""
    data = frame.data
    doc: dict[str, Any] = {
        "time": frame.time,
        "listener": frame.listener,
        "driver": frame.driver,
        "IMEI": frame.imei,
        "peer": frame.peer,
        "reason": frame.reason,
        "hex": bytes(data[:max_bytes]).hex(),
        "size": len(data),
    }
    if len(data) > max_bytes:
        doc["truncated"] = True
    return doc


class RejectedFrames:
    """The bounded, fire-and-forget writer of ``FramesRejeitados``."""

    def __init__(self, store: Any, config: Config, reactor: Any) -> None:
        self.store = store
        self.settings: RejectedFramesConfig = config.rejected_frames
        self.name = config.mongodb.collections.rejected
        self.reactor = reactor
        self._queue: deque[dict[str, Any]] = deque()
        self._call: Any = None
        self._writing = False
        self._stopped = False
        self.dropped = 0
        self._last_warning = float("-inf")

    def offer(self, frame: RejectedFrame) -> None:
        """Queue ``frame`` for writing; drop it (counted) when the queue is full. Never blocks."""
        if not self.settings.enabled or self._stopped:
            return
        if len(self._queue) >= self.settings.queue:
            self._drop("queue_full", 1)
            return
        self._queue.append(document(frame, self.settings.max_bytes))
        self._schedule()

    def pending(self) -> int:
        return len(self._queue)

    def stop(self) -> None:
        """No more writes (shutdown): what waits is dropped."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._queue.clear()

    def _schedule(self) -> None:
        if self._call is None and not self._writing:
            self._call = self.reactor.callLater(0, self._write)

    def _write(self) -> None:
        self._call = None
        if not self._queue or self._stopped:
            return
        batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        self._writing = True
        d = maybeDeferred(lambda: self.store.db[self.name].insert_many(batch, ordered=False))
        d.addCallbacks(self._written, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _written(self, _: Any, batch: list[dict[str, Any]]) -> None:
        self._writing = False
        for doc in batch:
            metrics.REJECTED_KEPT.labels(doc["driver"]).inc()
        if self._queue:
            self._schedule()

    def _failed(self, failure: Any, batch: list[dict[str, Any]]) -> None:
        self._writing = False
        self._drop("store_error", len(batch), failure.getErrorMessage())
        if self._queue:
            self._schedule()

    def _drop(self, reason: str, count: int, detail: str = "") -> None:
        self.dropped += count
        metrics.REJECTED_DROPPED.labels(reason).inc(count)
        now = self.reactor.seconds()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warn("rejected frames: {count} not kept ({reason}{detail}); {total} so far", count=count,
                     reason=reason, detail=f": {detail}" if detail else "", total=self.dropped)


async def _ensure(store: Any, config: Config) -> list[str]:
    db = store.db
    name = config.mongodb.collections.rejected
    created: list[str] = []
    listed = await db.command("listCollections", filter={"name": name}, nameOnly=True)
    exists = bool(listed.get("cursor", {}).get("firstBatch"))
    if not exists:
        try:
            await db.command("create", name, capped=True, size=config.rejected_frames.size_mb * 1024 * 1024)
            created.append(name)
            log.info("collection {name} created (capped, {mb} MB)", name=name, mb=config.rejected_frames.size_mb)
        except OperationFailure as e:
            if e.code != NAMESPACE_EXISTS:  # created meanwhile by another instance
                raise
    info = await db[name].index_information()
    keys = {tuple((str(k), int(v)) for k, v in dict(d).get("key", {}).items()) for d in info.values()}
    if TIME_INDEX not in keys:
        await db.command("createIndexes", name, indexes=[{"key": dict(TIME_INDEX), "name": "time_-1"}])
        created.append(f"{name}.time_-1")
    return created


def ensure_collection(store: Any, config: Config) -> Deferred:
    """Create the capped collection and its time index when missing (Deferred[list of what was made])."""
    if not config.rejected_frames.enabled:
        from twisted.internet.defer import succeed

        return succeed([])
    return ensureDeferred(_ensure(store, config))
