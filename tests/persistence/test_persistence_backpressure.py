"""The whole server over real sockets while its MongoDB is down: reads stop, memory stays bounded,
nothing is acknowledged unstored, and once the store is back every report is stored exactly once.

Fake GV50 devices (frames: gv50-protocol.md sample S1, §4 SACK) pipeline a burst of reports
without waiting for each SACK and, like real devices, send again whatever was not acknowledged.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from persistence_support import KillableStore, sample
from waygps.drivers.gv50.driver import driver as gv50
from waygps.events import Position

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DEVICES = 3
BURST = 200  # reports per device while the store is down (34 kB: far more than the queue may hold)
QUEUE_LIMIT = 10
RESEND = 6  # reports a device sends again at a time, once the server has taken all it was sent
WAIT_LIMIT = 60.0  # seconds before a wait gives up (a failure, not a measurement)
START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def gtfri(imei: str, n: int) -> bytes:
    """Sample S1 with its own count, send time and fix time (so its own ``_id``)."""
    fix = START + timedelta(seconds=n)
    return (f"+RESP:GTFRI,060228,{imei},,,10,1,1,12.0,147,329.7,-62.899703,-17.720434,{fix:%Y%m%d%H%M%S},"
            f"0736,0003,6AAE,3381,00,913.3,,,,0,220101,,,,{fix + timedelta(seconds=2):%Y%m%d%H%M%S},"
            f"{n:04X}$").encode()


def luhn_imei(body: str) -> str:
    """``body`` (14 digits) with its Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def document_id(frame: bytes) -> str:
    [event] = gv50.decode(frame, datetime.now(timezone.utc))
    assert isinstance(event, Position)
    return event.document_id


class Device(Protocol):
    """Keeps every report until its SACK; checks that each SACK comes only after the report is stored."""

    def __init__(self, imei: str, stored: Any) -> None:
        self.imei = imei
        self.stored = stored
        self.frames: dict[str, bytes] = {}
        self.ids: dict[str, str] = {}
        self.acked: set[str] = set()
        self.early: list[str] = []
        self.buffer = b""

    def send(self, n: int) -> None:
        count = f"{n:04X}"
        frame = gtfri(self.imei, n)
        self.frames[count] = frame
        self.ids[count] = document_id(frame)
        self.transport.write(frame)

    def resend_unacked(self) -> int:
        """Send again the oldest reports without a SACK (a real device waits about 20 s first)."""
        missing = [self.frames[c] for c in sorted(set(self.frames) - self.acked)[:RESEND]]
        self.transport.write(b"".join(missing))
        return len(missing)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"$" in self.buffer:
            reply, _, self.buffer = self.buffer.partition(b"$")
            if not reply.startswith(b"+SACK:"):
                continue
            count = reply[6:].decode()
            if count not in self.acked and self.stored.find_one({"_id": self.ids[count]}, {"_id": 1}) is None:
                self.early.append(count)
            self.acked.add(count)


@inlineCallbacks
def until(check: Callable[[], Any], what: str) -> Any:
    deadline = reactor.seconds() + WAIT_LIMIT
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        yield deferLater(reactor, 0.02, lambda: None)


@pytest.fixture
def store() -> Iterator[KillableStore]:
    s = KillableStore()
    s.start()
    s.wait()
    yield s
    s.close()


@pytest_twisted.inlineCallbacks
def test_store_down_reads_pause_memory_stays_bounded_and_every_report_is_stored_once(store, start_server):
    # ``store`` first: it is torn down after the server, which flushes into it when stopping.
    server = yield start_server(
        listeners=[{"driver": "gv50"}], mongodb={"uri": store.uri},
        persistence={"queue_limit": QUEUE_LIMIT, "batch_size": 5, "batch_interval_ms": 5.0,
                     "store_timeout": 15.0, "reconnect_max_delay": 0.3},
        commands={"poll_interval": 5.0})
    client = pymongo.MongoClient(store.uri, serverSelectionTimeoutMS=10000)
    stored = client[server.db_name]["DadosVeiculo"]
    persistence = server.persistence
    seen = {"max_pending": 0, "reports_taken": 0}
    deliver = persistence.deliver

    def watched_deliver(events: Any) -> Any:
        d = deliver(events)
        if not d.called:
            seen["reports_taken"] += sum(isinstance(e, Position) for e in events)
        seen["max_pending"] = max(seen["max_pending"], persistence.pending)
        return d

    persistence.deliver = watched_deliver  # the driver adapters' sink is this service

    devices = []
    for index in range(DEVICES):
        device = Device(luhn_imei(f"8628940201{index:04d}"), stored)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
        device.send(0)
        devices.append(device)
    yield until(lambda: all(d.acked == {"0000"} for d in devices), "the first SACK of every device")

    store.kill()
    seen.update(max_pending=0, reports_taken=0)
    frames_before = sample("waygps_frames_received_total", driver="gv50")
    for device in devices:
        for n in range(1, BURST + 1):
            device.send(n)
    yield until(lambda: persistence.paused, "device reads paused")
    yield deferLater(reactor, 0.5, lambda: None)  # the devices' reports wait in their sockets
    assert persistence.paused
    assert seen["max_pending"] <= 2 * QUEUE_LIMIT  # memory bounded by the queue, not by the devices
    assert seen["reports_taken"] <= 2 * QUEUE_LIMIT
    # Reading stopped: most of the burst is still in the sockets, not decoded and refused.
    frames_read = sample("waygps_frames_received_total", driver="gv50") - frames_before
    assert frames_read < DEVICES * BURST / 2
    assert sum(len(d.acked) for d in devices) == DEVICES  # nothing acknowledged while the store is down

    store.start()
    yield deferToThread(store.wait)
    resends = 0
    deadline = reactor.seconds() + WAIT_LIMIT
    while not all(len(d.acked) == BURST + 1 for d in devices):
        assert reactor.seconds() < deadline, "gave up waiting for every SACK"
        yield deferLater(reactor, 0.02, lambda: None)
        if persistence.pending == 0 and not persistence.paused:
            # The server has read, stored and answered all it was sent: what has no SACK was refused.
            for device in devices:
                resends += device.resend_unacked()

    assert [d.early for d in devices] == [[]] * DEVICES
    expected = sorted(i for d in devices for i in d.ids.values())
    assert sorted(doc["_id"] for doc in stored.find({}, {"_id": 1})) == expected  # each exactly once
    assert not persistence.paused and seen["max_pending"] <= 2 * QUEUE_LIMIT
    print(f"\n{DEVICES} devices x {BURST} reports during the outage; at most {seen['max_pending']} waiting "
          f"(limit {QUEUE_LIMIT}); {frames_read:.0f} frames read while paused; {resends} reports sent again "
          "before all were acknowledged")
    client.close()
