"""End to end: the generic driver in the real service, over real TCP, UDP and HTTP, into the store."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

pytestmark = [
    pytest.mark.integration,
    # Twisted's own client warns about its transport proxy when a response arrives with "Connection: close".
    pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning"),
]

TCP = {"driver": "generic", "transport": "tcp"}
UDP = {"driver": "generic", "transport": "udp"}


def nmea(body: str) -> str:
    checksum = 0
    for char in body.encode():
        checksum ^= char
    return f"${body}*{checksum:02X}"


def recent_epoch(seconds_ago: int = 60) -> int:
    return int(time.time()) - seconds_ago


class LineClient(Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += data
        while b"\n" in self.factory.received:
            line, _, self.factory.received = self.factory.received.partition(b"\n")
            self.factory.lines.put(line + b"\n")

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.closed.callback(None)


def tcp_client(port: int) -> ClientFactory:
    factory = ClientFactory()
    factory.protocol = LineClient
    factory.connected, factory.closed = Deferred(), Deferred()
    factory.lines, factory.received = DeferredQueue(), b""
    reactor.connectTCP("127.0.0.1", port, factory)
    return factory


@inlineCallbacks
def send_lines(port: int, *lines: bytes) -> Any:
    """Send the lines on one connection; the answers, one per line."""
    client = tcp_client(port)
    protocol = yield client.connected
    protocol.transport.write(b"".join(lines))
    answers = []
    for _ in lines:
        answers.append((yield client.lines.get()))
    protocol.transport.loseConnection()
    yield client.closed
    return answers


class UdpClient(DatagramProtocol):
    def __init__(self) -> None:
        self.replies: DeferredQueue = DeferredQueue()

    def datagramReceived(self, data: bytes, address: Any) -> None:
        self.replies.put(data)


@inlineCallbacks
def positions(server: Any, imei: str) -> Any:
    found = yield server.store.collection("positions").find({"IMEI": imei})
    return sorted(found, key=lambda d: (d["dataDevice"], d["latitude"] or 0))


@inlineCallbacks
def stored_eventually(server: Any, imei: str, count: int) -> Any:
    """For listeners that answer nothing: poll until the reports are there (pytest-timeout bounds it)."""
    while True:
        found = yield positions(server, imei)
        if len(found) >= count:
            return found
        yield deferLater(reactor, 0.05, lambda: None)


@inlineCallbacks
def http(method: bytes, url: str, body: bytes | None = None, content_type: bytes | None = None) -> Any:
    headers = Headers({b"Content-Type": [content_type]} if content_type else {})
    producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
    response = yield Agent(reactor).request(method, url.encode(), headers, producer)
    text = yield readBody(response)
    return response.code, text


@pytest_twisted.inlineCallbacks
def test_every_line_format_over_tcp_is_stored_and_answered(start_server: Any) -> None:
    server = yield start_server(listeners=[TCP])
    port = server.port(0)
    t = recent_epoch()
    fix = time.gmtime(t - 10)
    clock, date = time.strftime("%H%M%S.00", fix), time.strftime("%d%m%y", fix)
    answers = yield send_lines(
        port,
        b"id=123456789012345;lat=95;lon=1\n",
        b"IMEI: 123456789012345, LAT: -34.603722, LON: -58.381592, SPD: 45, HDG: 180\n",
        f'{{"imei": "123456789012345", "lat": -34.61, "lon": -58.39, "speed": 30, "alt": 12, "time": {t},'
        f' "ignition": true, "temp": 21.5}}\n'.encode(),
        ("123456789012345," + nmea(f"GNRMC,{clock},A,3436.22332,S,05822.89552,W,10.0,77.52,{date},,,A")
         + "\r\n").encode(),
    )
    assert answers == [b"ERR lat_out_of_range\n", b"OK 1\n", b"OK 1\n", b"OK 1\n"]
    docs = yield positions(server, "123456789012345")
    assert len(docs) == 3
    by_format = {d["attributes"]["format"]: d for d in docs}
    assert set(by_format) == {"text", "json", "nmea"}
    seed = by_format["text"]
    assert (seed["latitude"], seed["longitude"]) == (-34.603722, -58.381592)
    assert (seed["speed"], seed["course"]) == (45.0, 180.0)
    assert seed["protocol"] == "generic" and seed["attributes"]["time_source"] == "server"
    assert seed["location"] == {"type": "Point", "coordinates": [-58.381592, -34.603722]}
    js = by_format["json"]
    assert js["ignicao"] is True and js["altitude"] == 12.0 and js["attributes"]["temp"] == 21.5
    assert int(js["dataDevice"].timestamp()) == t
    assert by_format["nmea"]["speed"] == 18.52


@pytest_twisted.inlineCallbacks
def test_err_answers_keep_the_order_of_the_lines(start_server: Any) -> None:
    server = yield start_server(listeners=[TCP])
    answers = yield send_lines(server.port(0), b"id=order-1,lat=1,lon=2\n", b"id=order-1,lat=95,lon=2\n",
                               b"id=order-1,lat=3,lon=4\n")
    assert answers == [b"OK 1\n", b"ERR lat_out_of_range\n", b"OK 1\n"]


@pytest_twisted.inlineCallbacks
def test_udp_datagram_is_stored_and_answered_to_its_sender(start_server: Any) -> None:
    server = yield start_server(listeners=[UDP])
    client = UdpClient()
    port = reactor.listenUDP(0, client, interface="127.0.0.1")
    try:
        client.transport.write(f"id=udp-1,lat=-34.6,lon=-58.4,speed=10,time={recent_epoch()}\n".encode(),
                               ("127.0.0.1", server.port(0)))
        assert (yield client.replies.get()) == b"OK 1\n"
        client.transport.write(b"id=udp-1,lat=-34.6,lon=-58.4,speed=oops\n", ("127.0.0.1", server.port(0)))
        assert (yield client.replies.get()) == b"ERR bad_speed\n"
    finally:
        yield port.stopListening()
    docs = yield positions(server, "udp-1")
    assert [d["speed"] for d in docs] == [10.0]


@pytest_twisted.inlineCallbacks
def test_http_get_post_form_and_json_on_the_tcp_port(start_server: Any) -> None:
    server = yield start_server(listeners=[TCP])
    base = f"http://127.0.0.1:{server.port(0)}/"
    t = recent_epoch(300)
    code, text = yield http(b"GET", f"{base}?id=phone-1&lat=-34.6&lon=-58.4&timestamp={t}&speed=12&bearing=90"
                                    f"&altitude=25&batt=80")
    assert (code, text) == (200, b"OK 1\n")
    code, text = yield http(b"POST", base, f"id=phone-1&lat=-34.7&lon=-58.5&timestamp={t + 60}".encode(),
                            b"application/x-www-form-urlencoded")
    assert (code, text) == (200, b"OK 1\n")
    body = json.dumps({"device_id": "phone-1", "location": [
        {"timestamp": t + 120, "coords": {"latitude": -34.8, "longitude": -58.6, "speed": 5}},
        {"timestamp": t + 180, "coords": {"latitude": -34.9, "longitude": -58.7, "speed": 5}}]}).encode()
    code, text = yield http(b"POST", base, body, b"application/json")
    assert (code, text) == (200, b"OK 2\n")
    code, text = yield http(b"GET", f"{base}?id=phone-1&lat=-34.6&lon=-58.4&timestamp={t + 9 * 86400}")
    assert (code, text) == (400, b"ERR time_in_future\n")
    docs = yield positions(server, "phone-1")
    assert [d["latitude"] for d in docs] == [-34.6, -34.7, -34.8, -34.9]
    assert docs[0]["attributes"] == {"battery": 80.0, "format": "http_query"}
    assert [d["speed"] for d in docs[2:]] == [18.0, 18.0]


@pytest_twisted.inlineCallbacks
def test_a_retried_report_is_stored_once(start_server: Any) -> None:
    server = yield start_server(listeners=[TCP])
    url = f"http://127.0.0.1:{server.port(0)}/?id=retry-1&lat=1.5&lon=2.5&timestamp={recent_epoch()}"
    for _ in range(2):
        code, _ = yield http(b"GET", url)
        assert code == 200
    for _ in range(2):
        answers = yield send_lines(server.port(0), b"id=retry-1,lat=1.5,lon=2.5,speed=3\n")
        assert answers == [b"OK 1\n"]
    docs = yield positions(server, "retry-1")
    assert len(docs) == 2
    assert sorted(d["attributes"].get("time_source", "device") for d in docs) == ["device", "server"]


@pytest_twisted.inlineCallbacks
def test_acks_switched_off_still_store(start_server: Any) -> None:
    server = yield start_server(listeners=[{**TCP, "ack": False}])
    client = tcp_client(server.port(0))
    protocol = yield client.connected
    protocol.transport.write(b"id=quiet-1,lat=1,lon=2\nid=quiet-1,lat=100,lon=2\n")
    docs = yield stored_eventually(server, "quiet-1", 1)
    assert docs[0]["latitude"] == 1.0
    # One more report on the connection: acknowledgements go out in order, so once this one is
    # stored, an OK for the first (or the ERR for the second line) would already have been written.
    protocol.transport.write(b"id=quiet-1,lat=3,lon=4\n")
    docs = yield stored_eventually(server, "quiet-1", 2)
    protocol.transport.loseConnection()
    yield client.closed
    assert client.received == b"" and client.lines.pending == []


@pytest_twisted.inlineCallbacks
def test_curl_reports_like_a_phone(start_server: Any) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed on this machine")
    server = yield start_server(listeners=[TCP])
    url = f"http://127.0.0.1:{server.port(0)}/"
    result = yield deferToThread(subprocess.run, [
        curl, "-sS", "-i", "-H", "Content-Type: application/json", "-d",
        json.dumps({"id": "curl-1", "lat": -34.6, "lon": -58.4, "time": recent_epoch()}), url,
    ], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n") and result.stdout.endswith(b"\r\n\r\nOK 1\n")
    docs = yield positions(server, "curl-1")
    assert len(docs) == 1 and docs[0]["attributes"]["format"] == "http_json"
