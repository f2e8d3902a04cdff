"""End to end with the embedded store: a GV50 over a real TCP socket.

Order checked: report in -> document in DadosVeiculo -> ``+SACK`` out (the SACK is read
first and the database queried right after it: the document must already be there).
The store is made unreachable by cutting a TCP relay between WayGPS and it: no SACK
then; once it is back, the device's ``+BUFF`` re-send is stored once and acknowledged.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from gv50_vectors import FRAMES
from tests.relay import StoreRelay

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TIMEOUT = 20.0
IMEI = "862894020180553"
S1 = FRAMES["S1"]
REPORT_2 = S1.replace(b"113548,", b"113618,").replace(b"073554,132B", b"073624,132C")
HBD = b"+ACK:GTHBD,060228,862894020180553,,20160309073630,132D$"


class Device(Protocol):
    """A tracker's TCP side: collects what the server writes; ``read(n)`` waits for n bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: tuple[int, Deferred] | None = None
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self._check()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def read(self, count: int, timeout: float = TIMEOUT) -> Deferred:
        d: Deferred = Deferred()
        d.addTimeout(timeout, reactor)
        self.waiting = (count, d)
        self._check()
        return d

    def _check(self) -> None:
        if self.waiting and len(self.buffer) >= self.waiting[0]:
            count, d = self.waiting
            self.waiting = None
            data, self.buffer = self.buffer[:count], self.buffer[count:]
            d.callback(data)


@pytest.fixture
def store_relay(mongo_uri: str) -> Iterator[StoreRelay]:
    """Requested before ``start_server``, so it is torn down after the server stopped."""
    relay = StoreRelay(mongo_uri)
    yield relay
    if not relay.listening.connected:
        relay.restore()  # let anything still talking to the store finish
    for relayed in list(relay.factory.live):
        relayed.transport.loseConnection()
    pytest_twisted.blockon(relay.listening.stopListening())


def withheld() -> float:
    return REGISTRY.get_sample_value("waygps_acks_withheld_total", {"driver": "gv50"}) or 0.0


@pytest_twisted.inlineCallbacks
def wait_until(check: Any, what: str) -> Any:
    for _ in range(int(TIMEOUT / 0.05)):
        if check():
            return
        yield deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_twisted.inlineCallbacks
def test_report_stored_then_acknowledged_and_no_sack_while_the_store_is_away(
        store_relay: StoreRelay, start_server: Any) -> None:
    relay = store_relay
    server = yield start_server(
        listeners=[{"driver": "gv50", "transport": "tcp"}],
        mongodb={"uri": relay.uri},
        persistence={"store_timeout": 1.0, "reconnect_max_delay": 0.5, "batch_interval_ms": 1.0},
    )
    positions = server.store.collection("positions")
    device = Device()
    try:
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)

        device.transport.write(S1)
        assert (yield device.read(11)) == b"+SACK:132B$"
        (doc,) = yield positions.find({"IMEI": IMEI})  # stored before the SACK went out
        assert (doc["latitude"], doc["longitude"], doc["speed"], doc["ignicao"], doc["event"]) == (
            -17.720434, -62.899703, 20.0, True, "GTFRI")
        assert doc["attributes"]["mileage_km"] == 913.3 and doc["raw"] == S1.decode().rstrip("$")

        yield relay.cut()
        before = withheld()
        device.transport.write(REPORT_2)
        yield wait_until(lambda: withheld() > before, "the store to give up on the report")
        device.transport.write(HBD)  # a heartbeat is answered without the store
        assert (yield device.read(24)) == b"+SACK:GTHBD,060228,132D$"
        assert device.buffer == b""  # and the report was not acknowledged

        relay.restore()
        resend = REPORT_2.replace(b"+RESP:", b"+BUFF:")
        for _attempt in range(10):  # a device re-sends until acknowledged (WayGPS reconnects meanwhile)
            device.transport.write(resend)
            try:
                answer = yield device.read(11, timeout=3.0)
                break
            except TimeoutError:
                continue
        assert answer == b"+SACK:132C$"
        docs = yield positions.find({"IMEI": IMEI})
        assert len(docs) == 2
        (resent,) = [d for d in docs if d["attributes"]["count"] == "132C"]
        # Whichever copy landed first (the live one may have reached the store after WayGPS gave up on it).
        assert resent["dataDevice"].isoformat().startswith("2016-03-09T11:36:18")

        device.transport.write(REPORT_2.replace(b"+RESP:", b"+BUFF:"))  # again: still one document
        assert (yield device.read(11)) == b"+SACK:132C$"
        assert len((yield positions.find({"IMEI": IMEI}))) == 2
    finally:
        if device.transport is not None:
            device.transport.loseConnection()
