"""The track stream's back-pressure on fakes: a paused response asks MongoDB for nothing more."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from waygps.history.export import CsvEncoder
from waygps.web.api.stream import TrackStream

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def docs(start: int, n: int) -> list[dict]:
    return [{"dataDevice": T0 + timedelta(seconds=i), "latitude": 1.0, "longitude": 2.0, "valid": True}
            for i in range(start, start + n)]


class FakeCursor:
    """Batches on demand; each ``next_batch`` Deferred is fired by the test."""

    def __init__(self, batches: int, size: int) -> None:
        self.left = batches
        self.size = size
        self.requests: list[Deferred] = []
        self.closed = False
        self.served = 0

    @property
    def exhausted(self) -> bool:
        return self.left == 0

    def next_batch(self) -> Deferred:
        d: Deferred = Deferred()
        self.requests.append(d)
        return d

    def deliver(self) -> None:
        d = self.requests.pop(0)
        self.left -= 1
        batch = docs(self.served, self.size)
        self.served += self.size
        d.callback(batch)

    def close(self) -> Deferred:
        self.closed = True
        return succeed(None)


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeRequest:
    def __init__(self) -> None:
        self.producer: Any = None
        self.written: list[bytes] = []
        self.finished = False
        self.finish_notice: Deferred = Deferred()
        self.channel = type("Channel", (), {})()
        self.channel.transport = FakeTransport()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def finish(self) -> None:
        self.finished = True

    def notifyFinish(self) -> Deferred:
        return self.finish_notice


def test_a_paused_response_reads_nothing_more_until_resumed() -> None:
    cursor = FakeCursor(batches=5, size=3)
    request = FakeRequest()
    ends: list[str] = []
    stream = TrackStream(request, cursor, CsvEncoder("1"), ends.append)
    stream.start(docs(1000, 3))  # the first batch, read before the headers
    assert len(cursor.requests) == 1  # it asks for the next batch at once
    stream.pauseProducing()  # the client's buffer is full
    cursor.deliver()
    assert cursor.requests == []  # the batch in flight is written, no further read while paused
    written = len(request.written)
    stream.pauseProducing()
    assert len(request.written) == written
    stream.resumeProducing()
    assert len(cursor.requests) == 1
    stream.resumeProducing()  # resuming twice does not read twice
    assert len(cursor.requests) == 1
    while cursor.requests:
        cursor.deliver()
    assert request.finished and ends == ["done"]
    body = b"".join(request.written).decode()
    assert body.count("\r\n") == 1 + 3 + 5 * 3
    assert request.producer is None


def test_a_client_that_goes_away_closes_the_cursor() -> None:
    cursor = FakeCursor(batches=5, size=3)
    request = FakeRequest()
    ends: list[str] = []
    stream = TrackStream(request, cursor, CsvEncoder("1"), ends.append)
    stream.start(docs(0, 3))
    request.finish_notice.errback(ConnectionError("gone"))
    assert cursor.closed and ends == ["client_gone"]
    cursor.deliver()  # the read in flight lands: nothing written, nothing asked
    assert cursor.requests == [] and not request.finished


def test_a_store_failure_mid_stream_aborts_the_connection() -> None:
    cursor = FakeCursor(batches=5, size=3)
    cursor.next_batch = lambda: fail(ConnectionError("store away"))  # type: ignore[method-assign]
    request = FakeRequest()
    ends: list[str] = []
    TrackStream(request, cursor, CsvEncoder("1"), ends.append).start(docs(0, 3))
    assert request.channel.transport.aborted and not request.finished
    assert ends == ["store_failed"] and cursor.closed
