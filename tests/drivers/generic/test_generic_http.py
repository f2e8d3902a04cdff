"""The sans-IO HTTP request reader, and HTTP requests through the stream codec."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from waygps.actions import Close, Identified, Rejected, Send, Store
from waygps.drivers.generic.codec import GenericStreamCodec, Settings
from waygps.drivers.generic.http import CONTINUE, HttpError, RequestReader, looks_like_http, response

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
EPOCH = 1714564800


def read(data: bytes, max_body: int = 1000, pieces: int = 1):
    reader = RequestReader(max_body)
    step = max(1, len(data) // pieces)
    result = None
    for start in range(0, len(data), step):
        result = reader.feed(data[start:start + step])
        if result is not None:
            break
    return reader, result


def http_error(data: bytes, max_body: int = 1000) -> tuple[int, str]:
    with pytest.raises(HttpError) as raised:
        read(data, max_body)
    return raised.value.status, raised.value.reason


# --- the reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [1, 3, 1000])
def test_get_request_in_any_pieces(pieces):
    data = b"GET /?id=a&lat=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: test\r\n\r\n"
    reader, request = read(data, pieces=pieces)
    assert request is not None
    assert (request.method, request.target, request.version, request.body) == ("GET", "/?id=a&lat=1",
                                                                              "HTTP/1.1", b"")
    assert request.header("host") == "example" and request.header("user-agent") == "test"


def test_post_with_content_length_and_trailing_bytes():
    reader, request = read(b"POST / HTTP/1.0\nContent-Length: 5\n\nhelloEXTRA")
    assert request.body == b"hello" and reader.trailing == b"EXTRA"


@pytest.mark.parametrize("pieces", [1, 7, 1000])
def test_chunked_body(pieces):
    data = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n")
    _, request = read(data, pieces=pieces)
    assert request.body == b"hello, world"


def test_expect_100_continue_is_flagged_once():
    reader = RequestReader(100)
    assert reader.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n") is None
    assert reader.continue_due
    reader.continue_due = False
    assert reader.feed(b"abc").body == b"abc"


@pytest.mark.parametrize("data,expected", [
    (b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", (431, "headers_too_large")),
    (b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 9000, (431, "headers_too_large")),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(70)) + b"\r\n",
     (431, "headers_too_large")),
    (b"GET /\r\n\r\n", (400, "bad_request_line")),
    (b"GET  / HTTP/1.1\r\n\r\n", (400, "bad_request_line")),
    (b"GET /\xff HTTP/1.1\r\n\r\n", (400, "bad_request_line")),
    (b"GET / HTTP/2.0\r\n\r\n", (505, "http_version")),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", (400, "bad_header")),
    (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", (400, "bad_header")),
    (b"PUT / HTTP/1.1\r\n\r\n", (405, "method_not_allowed")),
    (b"HEAD / HTTP/1.1\r\n\r\n", (405, "method_not_allowed")),
    (b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", (413, "body_too_large")),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", (400, "bad_framing")),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", (400, "bad_framing")),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", (400, "bad_framing")),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", (501, "unsupported_transfer_encoding")),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", (400, "bad_chunk")),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", (400, "bad_chunk")),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3E9\r\n", (413, "body_too_large")),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 300, (400, "bad_chunk")),
])
def test_reader_errors(data, expected):
    assert http_error(data) == expected


def test_looks_like_http():
    assert looks_like_http(b"GET /") is True and looks_like_http(b"POST /x") is True
    assert looks_like_http(b"PO") is None and looks_like_http(b"") is None
    assert looks_like_http(b"GETX") is False and looks_like_http(b"id=1") is False


def test_response_bytes():
    assert response(200, "OK 1\n") == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                       b"Content-Length: 5\r\nConnection: close\r\n\r\nOK 1\n")


# --- through the codec ----------------------------------------------------------------------


def codec(**options) -> GenericStreamCodec:
    ack = options.pop("ack", True)
    return GenericStreamCodec(Settings.from_listener(options, ack=ack))


def stored(actions):
    kinds = [type(a) for a in actions]
    assert kinds == [Identified, Store], actions
    return actions[0], actions[1]


def test_osmand_get_is_stored_and_answered_200():
    c = codec(speed_unit="knots")
    ident, store = stored(c.receive(
        f"GET /?id=phone1&lat=-34.6&lon=-58.4&timestamp={EPOCH - 30}&speed=10&bearing=90&altitude=20"
        f"&batt=55&accuracy=4.5&charge=true HTTP/1.1\r\nHost: h\r\n\r\n".encode(), NOW))
    assert ident.imei == "phone1"
    assert ident.reject == response(403, "ERR unknown_device\n")
    assert store.ack == response(200, "OK 1\n")
    assert store.nack.startswith(b"HTTP/1.1 503 ")
    (p,) = store.events
    assert (p.latitude, p.longitude, p.speed, p.course, p.altitude) == (-34.6, -58.4, 18.52, 90.0, 20.0)
    assert p.device_time == datetime(2024, 5, 1, 11, 59, 30, tzinfo=timezone.utc)
    assert p.attributes == {"battery": 55.0, "accuracy": 4.5, "charge": "true", "format": "http_query"}
    assert p.raw.startswith("/?id=phone1&")


def test_post_form_body_and_query_merge():
    body = b"lat=1.5&lon=2.5&timestamp=2024-05-01T11%3A00%3A00Z&spd=3"
    _, store = stored(codec().receive(
        b"POST /?id=f1 HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body, NOW))
    (p,) = store.events
    assert (p.imei, p.latitude, p.longitude, p.speed) == ("f1", 1.5, 2.5, 3.0)
    assert p.device_time == datetime(2024, 5, 1, 11, tzinfo=timezone.utc)
    assert p.attributes["format"] == "http_form"


def test_post_json_body_of_the_traccar_client_app_chunked():
    body = json.dumps({"device_id": "app-1", "location": [
        {"timestamp": "2024-05-01T11:00:00Z", "coords": {"latitude": 1, "longitude": 2, "speed": 1}},
        {"timestamp": "2024-05-01T11:01:00Z", "coords": {"latitude": 1.1, "longitude": 2.1, "speed": 2}},
    ]}).encode()
    data = (b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    _, store = stored(codec().receive(data, NOW))
    assert [p.speed for p in store.events] == [3.6, 7.2]
    assert store.ack.endswith(b"OK 2\n")
    assert {p.attributes["format"] for p in store.events} == {"http_json"}


def test_post_text_body_of_report_lines():
    body = b"id=t1,lat=1,lon=2,time=2024-05-01T11:00:00Z\nid=t1,lat=3,lon=4,time=2024-05-01T11:00:10Z\n"
    head = b"POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
    _, store = stored(codec().receive(head + body, NOW))
    assert [p.latitude for p in store.events] == [1.0, 3.0]


def test_expect_continue_is_answered_before_the_report():
    c = codec()
    body = b'{"id": "c1", "lat": 1, "lon": 2}'
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    first = c.receive(head, NOW)
    assert first == [Send(CONTINUE)]
    stored(c.receive(body, NOW))


def test_report_error_is_answered_400_with_its_reason_and_closed():
    actions = codec().receive(b"GET /?id=a&lat=95&lon=1 HTTP/1.1\r\n\r\n", NOW)
    assert [type(a) for a in actions] == [Rejected, Close]
    assert actions[0].reason == "lat_out_of_range"
    assert actions[0].reply == response(400, "ERR lat_out_of_range\n")
    assert actions[0].excerpt == b"GET /?id=a&lat=95&lon=1 HTTP/1.1"


@pytest.mark.parametrize("data,status,reason", [
    (b"GET / HTTP/1.1\r\n\r\n", 400, "missing_id"),
    (b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{nope", 400, "bad_json"),
    (b"GET /?" + b"&".join(b"k%d=1" % i for i in range(201)) + b" HTTP/1.1\r\n\r\n", 400, "too_many_fields"),
    (b"DELETE / HTTP/1.1\r\n\r\n", 405, "method_not_allowed"),
    (b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413, "body_too_large"),
])
def test_http_rejections(data, status, reason):
    actions = codec().receive(data, NOW)
    assert [type(a) for a in actions] == [Rejected, Close]
    assert actions[0].reason == reason
    assert actions[0].reply.startswith(b"HTTP/1.1 %d " % status)
    assert actions[0].reply.endswith(f"ERR {reason}\n".encode())


def test_method_not_allowed_names_the_allowed_ones():
    reply = codec().receive(b"PUT / HTTP/1.1\r\n\r\n", NOW)[0].reply
    assert b"\r\nAllow: GET, POST\r\n" in reply


def test_bytes_after_the_request_are_counted_once_and_ignored():
    c = codec()
    two = b"GET /?id=a&lat=1&lon=2 HTTP/1.1\r\n\r\nGET /?id=a&lat=3&lon=4 HTTP/1.1\r\n\r\n"
    actions = c.receive(two, NOW)
    assert [type(a) for a in actions] == [Identified, Store, Rejected]
    assert actions[2].reason == "http_pipelined" and actions[2].reply == b""
    assert c.receive(b"GET /?id=a HTTP/1.1\r\n\r\n", NOW) == []
    assert c.receive(b"\r\n", NOW) == []


def test_http_acks_ignore_the_listener_ack_switch():
    _, store = stored(codec(ack=False).receive(b"GET /?id=a&lat=1&lon=2 HTTP/1.1\r\n\r\n", NOW))
    assert store.ack.startswith(b"HTTP/1.1 200 OK")


def test_http_after_lines_on_the_same_connection():
    c = codec()
    first = c.receive(b"id=a,lat=1,lon=2\n", NOW)
    assert [type(a) for a in first] == [Identified, Store]
    # A rejection now must not close: the line's OK may still be waiting for the store.
    actions = c.receive(b"GET /?id=a&lat=100&lon=2 HTTP/1.1\r\n\r\n", NOW)
    assert [type(a) for a in actions] == [Rejected]
    second = b"GET /?id=b&lat=1&lon=2 HTTP/1.1\r\n\r\n"
    assert c.receive(second, NOW) == [Rejected("http_pipelined", second, raw=second)]


def test_http_for_another_device_after_lines_is_rejected():
    c = codec()
    c.receive(b"id=a,lat=1,lon=2\n", NOW)
    (rejected,) = c.receive(b"GET /?id=b&lat=1&lon=2 HTTP/1.1\r\n\r\n", NOW)
    assert rejected.reason == "device_changed"
