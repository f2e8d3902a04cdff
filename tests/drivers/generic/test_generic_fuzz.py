"""Hypothesis: whatever arrives, the generic codecs return actions; they never raise.

Every report that comes out must also be storable: a BSON-encodable document.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import json

import bson
from hypothesis import given, settings
from hypothesis import strategies as st

from waygps.actions import Close, Identified, Rejected, Send, Store
from waygps.documents import position_document
from waygps.drivers.generic.codec import GenericDatagramCodec, GenericStreamCodec, Settings
from waygps.drivers.generic.formats import ALIASES

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
KNOWN = [alias for aliases in ALIASES.values() for alias in aliases]

values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-10**25, max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "1e999", "-1", "2024-05-01T11:00:00Z", "1714564800000", "on", "\x00", "{",
                     "$"]),
)
names = st.one_of(st.sampled_from(KNOWN), st.text(max_size=12))
pair = st.tuples(names, values, st.sampled_from("=:"), st.sampled_from(",;&"))
pairs_line = st.lists(pair, max_size=12).map(
    lambda items: "".join(f"{k}{eq}{v}{sep}" for k, v, eq, sep in items).encode("utf-8", "surrogatepass"))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_keys = st.one_of(st.sampled_from(KNOWN), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(json_keys, inner, max_size=6)), max_leaves=20)
json_line = json_values.map(lambda v: json.dumps(v).encode())
lines = st.one_of(st.binary(max_size=300), pairs_line, json_line,
                  st.text(max_size=200).map(lambda t: ("x,$GPRMC," + t).encode("utf-8", "surrogatepass")))
http = st.tuples(st.sampled_from([b"GET ", b"POST ", b"PUT "]), st.binary(max_size=200)).map(b"".join)
chunks = st.lists(st.one_of(lines, http, st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=8)


def check(actions) -> None:
    assert isinstance(actions, list)
    for action in actions:
        assert isinstance(action, (Identified, Store, Rejected, Close, Send))
        if isinstance(action, Store):
            for event in action.events:
                bson.encode(position_document(event))
                assert event.device_time <= NOW + timedelta(hours=24)
                assert -90 <= (event.latitude or 0) <= 90 and -180 <= (event.longitude or 0) <= 180


@settings(max_examples=400, deadline=None)
@given(chunks, st.integers(min_value=16, max_value=512))
def test_stream_codec_never_raises(pieces, limit):
    codec = GenericStreamCodec(Settings(max_line_bytes=limit, max_http_body_bytes=limit))
    for piece in pieces:
        check(codec.receive(piece, NOW))
        assert codec.buffered <= limit


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=5).map(b"\n".join))
def test_stream_codec_with_whole_lines(data):
    check(GenericStreamCodec(Settings()).receive(data + b"\n", NOW))


@settings(max_examples=400, deadline=None)
@given(st.one_of(lines, http))
def test_datagram_codec_never_raises(data):
    check(GenericDatagramCodec(Settings()).receive_datagram(data, NOW))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"GET /?", b"POST /?"]), pairs_line, st.binary(max_size=100))
def test_http_requests_never_raise(start, query, body):
    from urllib.parse import quote_from_bytes

    data = (start + quote_from_bytes(query, safe="=&;,:").encode() + b" HTTP/1.1\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    check(GenericStreamCodec(Settings()).receive(data, NOW))
