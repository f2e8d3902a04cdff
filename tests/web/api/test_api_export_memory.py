"""An export of 1,000,000 points through the HTTP API, on the embedded store, with bounded memory.

The points are inserted with pymongo ``insert_many`` in batches; the client
counts the CSV lines as they arrive and keeps nothing. The server runs in
this process, so its resident memory is sampled while the export runs: it
must not grow by anything near what a million points would take (several
hundred megabytes as documents or points). ``WAYGPS_TEST_EXPORT_POINTS``
runs it with fewer points while developing (the test prints how many).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from api_support import ALL, IMEI, tokens
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

POINTS = int(os.environ.get("WAYGPS_TEST_EXPORT_POINTS", "1000000"))
BATCH = 20_000
GROWTH_LIMIT = 150 * 1024 * 1024  # a million points held at once would be far beyond this


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class LineCounter(Protocol):
    def __init__(self, done: Deferred) -> None:
        self.done = done
        self.lines = 0
        self.bytes = 0
        self.tail = b""

    def dataReceived(self, data: bytes) -> None:
        self.lines += data.count(b"\n")
        self.bytes += len(data)
        self.tail = (self.tail + data)[-200:]

    def connectionLost(self, reason) -> None:
        self.done.callback(self)


def insert(mongo_uri: str, db_name: str) -> datetime:
    """Before the server starts: inserting without the track index and building it once is faster."""
    import pymongo

    client = pymongo.MongoClient(mongo_uri)
    db = client[db_name]
    collection = db["DadosVeiculo"]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for start in range(0, POINTS, BATCH):
        collection.insert_many([
            {"_id": f"m{i}", "IMEI": IMEI, "dataDevice": t0 + timedelta(seconds=i), "latitude": -33.0 + i * 1e-7,
             "longitude": -70.0, "speed": 30.0, "valid": True, "protocol": "generic"}
            for i in range(start, min(POINTS, start + BATCH))], ordered=False)
    db["Veiculo"].insert_one({"IMEI": IMEI})
    client.close()
    return t0


@pytest_twisted.inlineCallbacks
def test_a_million_point_export_runs_in_bounded_memory(start_server, mongo_uri, mongo_db_name):
    print(f"exporting {POINTS:,} points")
    started = time.monotonic()
    t0 = insert(mongo_uri, mongo_db_name)
    server = yield start_server(websocket=tokens(), history={"batch_size": 2000})
    print(f"inserted and indexed in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    end = t0 + timedelta(seconds=POINTS)
    url = (f"http://127.0.0.1:{server.web_port}/api/v1/devices/{IMEI}/positions?format=csv"
           f"&from={t0.isoformat()}&to={end.isoformat()}").replace("+00:00", "Z").encode()
    baseline = rss()
    peak = [baseline]
    sampler = LoopingCall(lambda: peak.__setitem__(0, max(peak[0], rss())))
    sampler.start(0.2)
    try:
        response = yield Agent(reactor).request(b"GET", url, Headers({b"authorization": [f"Bearer {ALL}".encode()]}))
        assert response.code == 200
        done: Deferred = Deferred()
        response.deliverBody(LineCounter(done))
        counter = yield done
    finally:
        sampler.stop()
    growth = peak[0] - baseline
    print(f"exported in {time.monotonic() - started:.0f} s")
    print(f"{counter.lines - 1:,} rows, {counter.bytes / 1e6:.1f} MB, RSS growth {growth / 1e6:.1f} MB")
    assert counter.lines == POINTS + 1  # the header and every point
    last = (t0 + timedelta(seconds=POINTS - 1)).isoformat().replace("+00:00", "Z").encode()
    assert counter.tail.rsplit(b"\r\n", 2)[-2].startswith(last)  # the last point, in order
    assert growth < GROWTH_LIMIT
