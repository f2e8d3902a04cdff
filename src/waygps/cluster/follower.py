"""The change stream of the watched collections, followed in a thread.

txmongo has no ``watch()``, so the stream is read with pymongo (already a
dependency) in one dedicated thread. Changes are handed to the reactor through
a bounded queue: the thread appends and, when the queue was empty, schedules
one ``callFromThread`` that drains it; when ``max_pending`` changes wait, the
thread waits too (the store keeps them, the stream resumes where it stopped).

The stream is opened with the last resume token: after a lost connection, a
store restart or a failover it continues after the last change it delivered,
so nothing stored meanwhile is missed. The token is also saved (``save_token``,
about once a second) so a restarted instance resumes where it left off. A token
the store can no longer resume from (its oplog moved on) is logged, the stream
restarts from now, and ``on_reset`` is called: the feed reloads
``initial_state`` for its clients.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from waygps import metrics

log = Logger(namespace="waygps.cluster.follower")

# ChangeStreamHistoryLost, ChangeStreamFatalError, InvalidResumeToken, BSONObjectTooLarge of a token
LOST_CODES = frozenset({286, 280, 260})
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
SAVE_EVERY = 1.0


def token_lost(error: BaseException) -> bool:
    """Does ``error`` say the resume token cannot be used any more?"""
    code = getattr(error, "code", None)
    if code in LOST_CODES:
        return True
    text = str(error).lower()
    return "resume" in text and ("no longer" in text or "not found" in text or "history" in text
                                 or "too old" in text)


class ChangeFollower:
    """Follows ``collections`` of ``database``; calls ``on_changes(list)`` in the reactor thread."""

    def __init__(self, uri: str, database: str, collections: Sequence[str], reactor: Any,
                 on_changes: Callable[[list[Mapping[str, Any]]], None], on_reset: Callable[[str], None],
                 load_token: Callable[[Any], Any] | None = None,
                 save_token: Callable[[Any, Any], None] | None = None,
                 max_pending: int = 10_000, max_await_ms: int = 200,
                 client_factory: Callable[..., Any] | None = None) -> None:
        self.uri = uri
        self.database = database
        self.collections = tuple(collections)
        self.reactor = reactor
        self.on_changes = on_changes
        self.on_reset = on_reset
        self.load_token = load_token
        self.save_token = save_token
        self.max_pending = max_pending
        self.max_await_ms = max_await_ms
        self.client_factory = client_factory
        self.token: Any = None
        self.delivered = 0
        self.resets = 0
        self.connected = False
        self._pending: deque[Mapping[str, Any]] = deque()
        self._room = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready: Deferred = Deferred()
        self._ended: Deferred = Deferred()

    # --- reactor side ---------------------------------------------------------
    def start(self) -> Deferred:
        """Starts the thread; the Deferred fires once the stream is open (changes from then on count)."""
        self._thread = threading.Thread(target=self._run, name="waygps-change-stream", daemon=True)
        self._thread.start()
        return self._ready

    def stop(self) -> Deferred:
        """Fires when the thread has ended (within about ``max_await_ms``)."""
        self._stop.set()
        with self._room:
            self._room.notify_all()
        if self._thread is None or self._ended.called:
            d: Deferred = Deferred()
            d.callback(None)
            return d
        return self._ended

    def _drain(self) -> None:
        with self._room:
            changes = list(self._pending)
            self._pending.clear()
            self._room.notify_all()
        if not changes or self._stop.is_set():
            return
        self.delivered += len(changes)
        try:
            self.on_changes(changes)
        except Exception:
            log.failure("change stream: handling {count} changes failed", count=len(changes))

    def _say(self, level: str, text: str, **kw: Any) -> None:
        self.reactor.callFromThread(getattr(log, level), text, **kw)

    def _reset(self, reason: str) -> None:
        self.resets += 1
        try:
            self.on_reset(reason)
        except Exception:
            log.failure("change stream: feed reset failed")

    def _became_ready(self) -> None:
        if not self._ready.called:
            self._ready.callback(None)

    def _finished(self) -> None:
        if not self._ready.called:
            self._ready.callback(None)
        if not self._ended.called:
            self._ended.callback(None)

    # --- the thread -----------------------------------------------------------
    def _client(self) -> Any:
        if self.client_factory is not None:
            return self.client_factory(self.uri)
        import pymongo

        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000,
                                   appname="waygps-follower")

    def _run(self) -> None:
        try:
            client = self._client()
        except Exception as e:
            self._say("error", "change stream: no client: {error}", error=e)
            self.reactor.callFromThread(self._finished)
            return
        try:
            self._loop(client)
        finally:
            try:
                if self.save_token is not None and self.token is not None:
                    self.save_token(client, self.token)
            except Exception as e:  # the store is going away too: the token in memory still resumes
                self._say("debug", "change stream: resume token not saved at the end: {error}", error=e)
            client.close()
            self.reactor.callFromThread(self._finished)

    def _loop(self, client: Any) -> None:
        from pymongo.errors import OperationFailure, PyMongoError

        if self.load_token is not None:
            try:
                self.token = self.load_token(client)
            except PyMongoError as e:
                self._say("warn", "change stream: saved resume token not read ({error}); starting from now",
                          error=e)
        delay = BACKOFF_INITIAL
        outage_since: float | None = None
        opened = False
        pipeline = [{"$match": {"ns.coll": {"$in": list(self.collections)},
                                "operationType": {"$in": ["insert", "update", "replace"]}}}]
        while not self._stop.is_set():
            try:
                options: dict[str, Any] = {"full_document": "updateLookup", "max_await_time_ms": self.max_await_ms}
                if self.token is not None:
                    options["resume_after"] = self.token
                with client[self.database].watch(pipeline, **options) as stream:
                    if outage_since is not None:
                        self._say("info", "change stream: following again after {seconds:.1f} s, from the last "
                                  "change delivered", seconds=time.monotonic() - outage_since)
                        outage_since = None
                    self.connected = True
                    opened = True
                    self.reactor.callFromThread(self._became_ready)
                    delay = BACKOFF_INITIAL
                    self._follow(stream, client)
            except OperationFailure as e:
                self.connected = False
                if self.token is not None and token_lost(e):
                    self.token = None
                    if not opened:
                        # The token saved by a previous run: no dashboard is waiting for what it missed.
                        self._say("info", "change stream: the saved resume token is too old ({error}); "
                                  "starting from now", error=e)
                        continue
                    metrics.FEED_INTERRUPTIONS.labels("token_lost").inc()
                    self._say("error", "change stream: resume token too old to use ({error}); restarting "
                              "from now, feed clients get initial_state again", error=e)
                    self.reactor.callFromThread(self._reset, str(e))
                    continue
                outage_since = self._outage(e, outage_since)
            except PyMongoError as e:
                self.connected = False
                outage_since = self._outage(e, outage_since)
            except Exception as e:  # never let the thread die silently
                self.connected = False
                self._say("failure", "change stream: unexpected error {error!r}", error=e)
                outage_since = outage_since or time.monotonic()
            if self._stop.wait(delay):
                break
            delay = min(BACKOFF_MAX, delay * 2)
        self.connected = False

    def _outage(self, error: BaseException, since: float | None) -> float:
        if since is None:
            metrics.FEED_INTERRUPTIONS.labels("unreachable").inc()
            self._say("warn", "change stream interrupted ({error}); resuming from the last change delivered",
                      error=f"{type(error).__name__}: {error}"[:300])
            return time.monotonic()
        return since

    def _follow(self, stream: Any, client: Any) -> None:
        saved_at = time.monotonic()
        while not self._stop.is_set():
            change = stream.try_next()
            if change is not None:
                with self._room:
                    while len(self._pending) >= self.max_pending and not self._stop.is_set():
                        self._room.wait(0.5)
                    wake = not self._pending
                    self._pending.append(change)
                metrics.FEED_CHANGES.inc()
                if wake:
                    self.reactor.callFromThread(self._drain)
            token = stream.resume_token
            if token is not None:
                self.token = token
            if self.save_token is not None and time.monotonic() - saved_at >= SAVE_EVERY:
                saved_at = time.monotonic()
                try:
                    self.save_token(client, self.token)
                except Exception as e:  # saved again within SAVE_EVERY; the stream's own failure is logged
                    self._say("debug", "change stream: resume token not saved: {error}", error=e)
