"""One heartbeat document per instance, and what happens when one stops beating.

Every ``heartbeat_interval`` an instance writes its ``WayGPSInstance``
document (id, host, pid, version, started, devices held, reports/s, last
heartbeat). An instance whose heartbeat is older than ``lease_seconds`` is
dead or cut off: the first live instance to notice claims the expiry (one
conditional update, so two instances never both act) and marks the dead
instance's devices offline, instead of leaving them online forever. A clean
stop writes ``state: "stopped"``.

The decisions are functions of ``now`` (seconds); the service takes it from the
reactor, so tests drive leases with ``task.Clock``.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from waygps.config import ClusterConfig
from waygps.events import Position

log = Logger(namespace="waygps.cluster.lease")

STOP_TIMEOUT = 3.0

RUNNING = "running"
STOPPED = "stopped"
EXPIRED = "expired"


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def heartbeat_fields(*, host: str, pid: int, version: str, started: float, devices: int,
                     reports_per_second: float, now: float, lease_seconds: float,
                     state: str = RUNNING) -> dict[str, Any]:
    """The ``$set`` of one heartbeat."""
    return {
        "host": host,
        "pid": pid,
        "version": version,
        "started": utc(started),
        "devices": devices,
        "reportsPerSecond": round(reports_per_second, 1),
        "heartbeat": utc(now),
        "leaseSeconds": lease_seconds,
        "state": state,
    }


def expired_query(now: float, lease_seconds: float, own_id: str) -> dict[str, Any]:
    """Running instances, other than this one, whose last heartbeat is older than the lease."""
    return {"_id": {"$ne": own_id}, "state": RUNNING, "heartbeat": {"$lt": utc(now - lease_seconds)}}


def is_stale(doc: Mapping[str, Any], now: float, lease_seconds: float | None = None) -> bool:
    """Has this instance document missed its lease at ``now`` (a running one only)?"""
    if doc.get("state") != RUNNING:
        return False
    beat = doc.get("heartbeat")
    if not isinstance(beat, datetime):
        return True
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=timezone.utc)
    lease = lease_seconds if lease_seconds is not None else float(doc.get("leaseSeconds") or 0)
    return beat < utc(now) - timedelta(seconds=lease)


class RateMeter:
    """Stored reports per second between two heartbeats (counted from the local bus)."""

    def __init__(self, now: float) -> None:
        self.count = 0
        self._last_count = 0
        self._last_time = now

    def __call__(self, event: Any) -> None:
        if isinstance(event, Position):
            self.count += 1

    def rate(self, now: float) -> float:
        elapsed = now - self._last_time
        value = (self.count - self._last_count) / elapsed if elapsed > 0 else 0.0
        self._last_count, self._last_time = self.count, now
        return value


class LeaseKeeper:
    """Beats for this instance and expires the others."""

    def __init__(self, store: Any, instance_id: str, config: ClusterConfig, reactor: Any,
                 devices: Callable[[], int], version: str, publisher: Any = None) -> None:
        self.store = store
        self.instance_id = instance_id
        self.config = config
        self.reactor = reactor
        self.devices = devices
        self.version = version
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = reactor.seconds()
        self.meter = RateMeter(self.started)
        self._unsubscribe = publisher.subscribe(self.meter) if publisher is not None else None
        self._loop: LoopingCall | None = None
        self._beating: Deferred | None = None
        self.expired: list[str] = []

    def collection(self) -> Any:
        return self.store.collection("instances")

    def start(self) -> Deferred:
        """Writes the first heartbeat (fires when written), then beats every ``heartbeat_interval``."""
        first = self.beat()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.config.heartbeat_interval, now=False).addErrback(
            lambda f: log.failure("cluster: heartbeat loop stopped", f))
        return first

    def _tick(self) -> Deferred | None:
        if self._beating is not None:
            return None  # the store is slow: one heartbeat at a time
        self._beating = self.beat()

        def done(result: Any) -> None:
            self._beating = None

        return self._beating.addBoth(done)

    @inlineCallbacks
    def beat(self, state: str = RUNNING) -> Any:
        now = self.reactor.seconds()
        fields = heartbeat_fields(host=self.host, pid=self.pid, version=self.version, started=self.started,
                                  devices=self.devices() if state == RUNNING else 0, reports_per_second=self.meter.rate(now), now=now,
                                  lease_seconds=self.config.lease_seconds, state=state)
        try:
            before = yield self.collection().find_one_and_update({"_id": self.instance_id}, {"$set": fields},
                                                                 upsert=True)
        except Exception as e:
            log.warn("cluster: heartbeat of instance {instance} not written ({error})",
                     instance=self.instance_id, error=f"{type(e).__name__}: {e}"[:200])
            return None
        if before is not None and before.get("state") == EXPIRED and state == RUNNING:
            log.warn("cluster: this instance's lease had expired (marked by {by}); its devices show online "
                     "again with their next report", by=before.get("expiredBy", "?"))
        if state == RUNNING:
            yield self.expire_others(now)
        return None

    @inlineCallbacks
    def expire_others(self, now: float) -> Any:
        """Claim the expiry of each instance past its lease and mark its devices offline."""
        try:
            stale = yield self.collection().find(expired_query(now, self.config.lease_seconds, self.instance_id))
        except Exception as e:
            log.warn("cluster: instance leases not read ({error})", error=f"{type(e).__name__}: {e}"[:200])
            return []
        done = []
        for doc in stale:
            claimed = yield self.collection().find_one_and_update(
                {"_id": doc["_id"], "state": RUNNING, "heartbeat": doc.get("heartbeat")},
                {"$set": {"state": EXPIRED, "expiredBy": self.instance_id, "expiredAt": utc(now)}})
            if claimed is None:
                continue  # another instance took it, or it came back
            result = yield self.store.collection("vehicles").update_many(
                {"instance": doc["_id"], "online": True}, {"$set": {"online": False}})
            count = int(getattr(result, "modified_count", 0) or 0)
            log.warn("cluster: instance {dead} missed its lease (last heartbeat {beat}); {count} of its devices "
                     "marked offline", dead=doc["_id"], beat=doc.get("heartbeat"), count=count)
            done.append(doc["_id"])
            self.expired.append(doc["_id"])
        return done

    def stop(self) -> Deferred:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        # The last heartbeat says "stopped"; a store that is gone does not hold the shutdown up.
        d = maybeDeferred(self.beat, STOPPED)
        d.addTimeout(STOP_TIMEOUT, self.reactor)
        return d.addErrback(lambda f: log.warn("cluster: final heartbeat not written ({error})",
                                               error=f.getErrorMessage() or f.type.__name__))
