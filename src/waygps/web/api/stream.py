"""A track written to an HTTP response as it is read, one cursor batch at a time.

The response is a streaming ``IPushProducer``: when the client reads slowly
and the transport's buffer fills, Twisted pauses it and no further batch is
requested from MongoDB until it resumes. So memory holds about one batch,
whatever the track's length. A store failure after the first bytes were sent
cannot become an error status any more: the connection is aborted, so the
client sees a truncated transfer, never a short file that looks whole.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from waygps import metrics
from waygps.history.export import Encoder
from waygps.history.source import points_of

log = Logger(namespace="waygps.api")


@implementer(IPushProducer)
class TrackStream:
    def __init__(self, request: Any, cursor: Any, encoder: Encoder, on_end: Callable[[str], None]) -> None:
        self.request = request
        self.cursor = cursor
        self.encoder = encoder
        self.on_end = on_end
        self._paused = False
        self._fetching = False
        self._done = False

    def start(self, first: list[dict]) -> None:
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._write(self.encoder.head())
        self._batch(first)

    # --- IPushProducer ---------------------------------------------------------------
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pull()

    def stopProducing(self) -> None:
        if not self._done:
            self._done = True
            self.cursor.close()
            self.on_end("client_gone")

    # --- reading ---------------------------------------------------------------------
    def _pull(self) -> None:
        if self._paused or self._fetching or self._done:
            return
        self._fetching = True
        self.cursor.next_batch().addCallbacks(self._got, self._failed)

    def _got(self, docs: list[dict]) -> None:
        self._fetching = False
        if self._done:
            return
        self._batch(docs)

    def _batch(self, docs: list[dict]) -> None:
        if docs:
            before = self.encoder.count
            self._write(self.encoder.points(points_of(docs)))
            metrics.API_POINTS.labels(self.encoder.format).inc(self.encoder.count - before)
        if self.cursor.exhausted:
            self._finish()
        else:
            self._pull()

    def _write(self, data: bytes) -> None:
        if data:
            self.request.write(data)

    def _finish(self) -> None:
        self._done = True
        self._write(self.encoder.tail())
        self.request.unregisterProducer()
        self.request.finish()
        self.on_end("done")

    def _failed(self, failure: Failure) -> None:
        self._fetching = False
        if self._done:
            return
        self._done = True
        metrics.STORE_FAILURES.labels("api_read").inc()
        log.error("api: track export failed after {n} points ({why}); aborting the response",
                  n=self.encoder.count, why=failure.getErrorMessage())
        self.cursor.close()
        self.request.unregisterProducer()
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None:
            transport.abortConnection()
        self.on_end("store_failed")
