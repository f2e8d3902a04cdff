"""Statistics end to end: reports over real TCP into the real server, the daily document, the API and `waygps stats`."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.threads import deferToThread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web" / "api"))

from api_support import ALL, get, tokens  # noqa: E402

from waygps.cli import stats as stats_cli  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Using readBody:DeprecationWarning")]

IMEI = "123456789012345"


class Lines(Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.callback(self)

    def dataReceived(self, data: bytes) -> None:
        for line in data.splitlines():
            self.factory.lines.put(line)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.closed.callback(None)


@inlineCallbacks
def send_lines(port: int, *lines: bytes) -> Any:
    factory = ClientFactory()
    factory.protocol = Lines
    factory.connected, factory.closed, factory.lines = Deferred(), Deferred(), DeferredQueue()
    reactor.connectTCP("127.0.0.1", port, factory)
    protocol = yield factory.connected
    protocol.transport.write(b"".join(lines))
    answers = []
    for _ in lines:
        answers.append((yield factory.lines.get()))
    protocol.transport.loseConnection()
    yield factory.closed
    return answers


@pytest_twisted.inlineCallbacks
def test_reports_are_counted_per_listener_and_day(start_server: Any, capsys: Any) -> None:
    server = yield start_server(listeners=[{"driver": "generic", "transport": "tcp", "name": "phones"}],
                                websocket=tokens(), stats={"flush_interval": 3600})
    t = int(time.time()) - 30
    line = (f'{{"imei": "{IMEI}", "lat": -34.61, "lon": -58.39, "speed": 30, "time": {t}}}\n').encode()
    later = line.replace(str(t).encode(), str(t + 1).encode())
    answers = yield send_lines(server.port(0), line, b"id=123456789012345;lat=95;lon=1\n", later)
    assert answers == [b"OK 1", b"ERR lat_out_of_range", b"OK 1"]
    answers = yield send_lines(server.port(0), line)  # re-sent after it was stored: a duplicate
    assert answers == [b"OK 1"]
    yield server.service.stats.flush()

    response, body = yield get(server, "/stats/daily", token=ALL)
    assert response.code == 200
    [day] = json.loads(body)["days"]
    assert day["listener"] == "phones" and day["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert day["received"] == 4 and day["stored"] == 2 and day["duplicates"] == 1
    assert day["rejected"] == 1 and day["rejected_by"] == {"lat_out_of_range": 1}
    assert day["devices_connected"] == 1
    assert day["store_latency"]["count"] == 2 and day["store_latency"]["p95_ms"] is not None
    assert day["device_delay"]["count"] == 2 and day["device_delay"]["mean_ms"] >= 29_000

    # Another report after the flush is written when the server stops.
    answers = yield send_lines(server.port(0), line.replace(str(t).encode(), str(t + 2).encode()))
    assert answers == [b"OK 1"]
    yield server.stop()
    args = argparse.Namespace(start=None, end=None, listener="phones", json=False, timeout=5.0)
    out = io.StringIO()
    code = yield deferToThread(stats_cli.run, args, server.config, None, out, io.StringIO())
    assert code == 0
    header, row = out.getvalue().splitlines()
    values = dict(zip(header.split(), row.split()))
    assert (values["listener"], values["received"], values["stored"], values["rejected"]) == ("phones", "5", "3", "1")
