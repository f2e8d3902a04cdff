"""Properties of the GV50 codecs, with hypothesis: chunking, garbage, the GTFRI shortcut."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import bson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gv50_vectors import FRAMES, X4
from waygps.actions import Close, Flagged, Identified, Rejected, Send, Store
from waygps.documents import position_document
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
from waygps.events import Position

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)
IMEI = b"862894020180553"
SAME_DEVICE = [f for n, f in FRAMES.items() if n not in ("X1", "X2")]
SAME_DEVICE = [f.replace(f.split(b",")[2], IMEI) for f in SAME_DEVICE]  # one device on one connection
STREAM_PARTS = [f if f.endswith(b"$") else f + b"\r\n" for f in SAME_DEVICE] + [
    FRAMES["X1"], FRAMES["X2"] + b"\n", b"\r\n", b"\x00", b"GET / HTTP/1.1\r\n", b"noise ", X4.replace(
        b"135790246811220", IMEI)]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def comparable(actions: list[Any]) -> list[Any]:
    """Actions except noise excerpts, which depend on where reads happen to end."""
    return [a for a in actions if not (isinstance(a, Rejected) and a.reason == "noise")]


def feed(codec: Gv50StreamCodec, stream: bytes, cuts: list[int]) -> list[Any]:
    actions: list[Any] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        actions += codec.receive(stream[start:cut], NOW)
        assert codec.splitter.buffered <= codec.max_frame
        start = cut
    return actions


@SETTINGS
@given(parts=st.lists(st.sampled_from(STREAM_PARTS), min_size=1, max_size=12), data=st.data())
def test_any_chunking_gives_the_same_events(parts: list[bytes], data: Any) -> None:
    stream = b"".join(parts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    whole = Gv50StreamCodec().receive(stream, NOW)
    chunked = feed(Gv50StreamCodec(), stream, cuts)
    assert comparable(chunked) == comparable(whole)
    assert not any(isinstance(a, Close) for a in whole)


@SETTINGS
@given(data=st.binary(max_size=6000), cuts=st.lists(st.integers(0, 6000), max_size=20))
def test_random_bytes_never_raise_and_memory_stays_bounded(data: bytes, cuts: list[int]) -> None:
    codec = Gv50StreamCodec(max_frame=512)
    actions = feed(codec, data, [c for c in cuts if c <= len(data)])
    closes = [i for i, a in enumerate(actions) if isinstance(a, Close)]
    assert closes in ([], [len(actions) - 1])  # closed at most once, and nothing after it
    for action in actions + Gv50DatagramCodec(max_frame=512).receive_datagram(data, NOW):
        assert isinstance(action, (Identified, Rejected, Close, Store, Send, Flagged)), action
        assert not isinstance(action, Rejected) or len(action.excerpt) <= 200


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=512, max_size=2000).map(lambda b: b.replace(b"+", b"-")),
       cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_a_connection_sending_only_garbage_is_closed_at_the_frame_limit(data: bytes, cuts: list[int]) -> None:
    actions = feed(Gv50StreamCodec(max_frame=512), data, [c for c in cuts if c <= len(data)])
    assert isinstance(actions[-1], Close)
    assert all(isinstance(a, Rejected) and a.reason == "noise" for a in actions[:-1])


@SETTINGS
@given(frame=st.sampled_from(SAME_DEVICE), edits=st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from(list(b",$+.-0123456789AFaf:\x00\n \xff"))), max_size=6))
def test_damaged_frames_never_raise(frame: bytes, edits: list[tuple[int, int]]) -> None:
    damaged = bytearray(frame)
    for at, value in edits:
        if damaged:
            damaged[at % len(damaged)] = value
    codec = Gv50StreamCodec()
    actions = codec.receive(FRAMES["S1"] + bytes(damaged) + b"$", NOW)
    assert actions[0] == Identified("862894020180553")
    for action in actions:
        if isinstance(action, Store):
            for event in action.events:
                assert event.imei == "862894020180553"
                if isinstance(event, Position):
                    assert event.device_time.year >= 2000 or event.attributes.get("time_source") is None
                    bson.encode(position_document(event))  # MongoDB can store it (else: refused, re-sent forever)
    Gv50DatagramCodec().receive_datagram(bytes(damaged), NOW)


def _field(values: list[str]) -> Any:
    """Mostly plausible values (the first is the simplest), one time in eight anything."""
    odd = st.text(alphabet="0123456789.-+AFaf:nix ", max_size=6)
    return st.tuples(st.integers(0, 7), st.sampled_from(values), odd).map(lambda t: t[2] if t[0] == 7 else t[1])


# Values the shortcut decides on (it must decide as the general path does), and, less often,
# values it hands to the general path (wrong layout, out of range, not a number).
gtfri_fields = st.fixed_dictionaries({
    "head": st.sampled_from(["+RESP:GTFRI", "+BUFF:GTFRI", "+RESP:GTFRI", "+RESP:GTERI"]),
    "version": st.sampled_from(["060228", "8020040703", "0F0106"]),
    "power": _field(["12400", "", "0"]),
    "kind": _field(["10", "40", "1f", "0", "G1"]),
    "number": st.sampled_from(["1", "1", "1", "1", "2", "0"]),
    "accuracy": _field(["1", "", "0", "12"]),
    "speed": _field(["20.5", "", "0.0", "inf"]),
    "course": _field(["147", "", "359"]),
    "altitude": _field(["329.7", "", "-93.1"]),
    "lon": _field(["-62.899703", "8.611466", "181.0", ""]),
    "lat": _field(["-17.720434", "47.68", "91", ""]),
    "when": _field(["20160309113548", "20161309113548", "", "2016030911354x"]),
    "cell": st.sampled_from(["0736,0003,6AAE,3381", ",,,", "0460,0000,18d8,6141", "x,1,2,3", "1,2,ZZ,3"]),
    "reserved": st.sampled_from(["00", "", "00", "", "01", "25.2"]),
    "mileage": _field(["913.3", "", "nan"]),
    "tail": st.sampled_from([",,,,0,220101,,,,", ",12:00:01,,,94,210100,,,,", ",,,,,110000,,,,", ",,,,101,2201,,,,",
                             ",,,,x,220101,,,,", ",,7,,100,210100,,,,,", ",,,,0,220101,,,"]),
    "send": st.sampled_from(["20160309073554", "", "20160309073554", "2016"]),
    "count": st.sampled_from(["132B", "00b8", "132B", "00b8", "12345"]),
})


# Frames of the shortcut's shape: only what it decides on varies.
shortcut_fields = st.fixed_dictionaries({
    "head": st.sampled_from(["+RESP:GTFRI", "+BUFF:GTFRI"]),
    "version": st.sampled_from(["060228", "8020040703", "0F0106"]),
    "power": st.sampled_from(["12400", "", "0"]),
    "kind": st.sampled_from(["10", "40", "1f", "G1"]),
    "number": st.just("1"),
    "accuracy": st.sampled_from(["1", "", "0", "12"]),
    "speed": st.sampled_from(["20.5", "", "0.0", "inf"]),
    "course": st.sampled_from(["147", "", "359"]),
    "altitude": st.sampled_from(["329.7", "", "-93.1"]),
    "lon": st.sampled_from(["-62.899703", "8.611466", "-180.0", "-180.5", "181.0"]),
    "lat": st.sampled_from(["-17.720434", "47.68", "90", "-90.1"]),
    "when": st.sampled_from(["20160309113548", "20200101000001", "20161309113548"]),
    "cell": st.sampled_from(["0736,0003,6AAE,3381", ",,,", "0460,0000,18d8,6141", "1,2,ZZ,3"]),
    "reserved": st.sampled_from(["00", ""]),
    "mileage": st.sampled_from(["913.3", "", "0.0", "nan"]),
    "tail": st.sampled_from([",,,,0,220101,,,,", ",12:00:01,,,94,210100,,,,", ",,,,,110000,,,,", ",,,,101,210100,,,,",
                             ",,7,,100,210100,,,,,", ",,7,,100,210100,,,,", ",,,,0,220101,,,"]),
    "send": st.sampled_from(["20160309073554", ""]),
    "count": st.sampled_from(["132B", "00b8", "FFFF"]),
})


def _shortcut_frame(f: dict[str, str]) -> bytes:
    return (f"{f['head']},{f['version']},862894020180553,,{f['power']},{f['kind']},{f['number']},"
            f"{f['accuracy']},{f['speed']},{f['course']},{f['altitude']},{f['lon']},{f['lat']},{f['when']},"
            f"{f['cell']},{f['reserved']},{f['mileage']}{f['tail']}{f['send']},{f['count']}$").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.one_of(shortcut_fields, gtfri_fields), second=st.one_of(shortcut_fields, gtfri_fields))
def test_gtfri_shortcut_equals_the_general_path(first: dict[str, str], second: dict[str, str]) -> None:
    fast, general = Gv50StreamCodec(), Gv50StreamCodec()
    general.use_fast_path = False
    for codec in (fast, general):
        codec.receive(FRAMES["S1"], NOW)  # identified: the shortcut may serve what follows
    stream = _shortcut_frame(first) + _shortcut_frame(second)
    for _ in range(2):  # the second time, every cache the shortcut needs is warm
        assert fast.receive(stream, NOW) == general.receive(stream, NOW)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reads=st.lists(st.one_of(shortcut_fields, gtfri_fields), min_size=1, max_size=4),
       extra=st.sampled_from([b"", b"\r\n", b"\n", b"\x00", b"$", b"+RESP:GTFRI,060228", b"x"]), ack=st.booleans())
def test_one_frame_per_read_equals_the_general_path(reads: list[dict[str, str]], extra: bytes, ack: bool) -> None:
    # The usual TCP read (one whole frame) takes Gv50StreamCodec.receive's own shortcut: same actions.
    fast, general = Gv50StreamCodec(ack=ack), Gv50StreamCodec(ack=ack)
    general.use_fast_path = False
    for codec in (fast, general):
        codec.receive(FRAMES["S1"], NOW)
    datas = [_shortcut_frame(f) for f in reads]
    datas[-1] += extra  # sometimes a read that is not exactly one frame, or leaves a tail behind
    for _ in range(2):
        for data in datas:
            assert fast.receive(data, NOW) == general.receive(data, NOW)
            assert fast.splitter.buffered == general.splitter.buffered


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.sampled_from(STREAM_PARTS), st.binary(max_size=300),
                      st.builds(lambda a, b: a + b, st.sampled_from(STREAM_PARTS), st.binary(max_size=8)),
                      st.builds(lambda a, at, b: a[:at % len(a)] + b + a[at % len(a):], st.sampled_from(STREAM_PARTS),
                                st.integers(0, 400), st.sampled_from([b"\n", b"\x00", b"+", b"$", b"\r", b"\xff"]))),
       before=st.sampled_from([b"", b"+RESP:GT", b"xx", b"+RESP:" + b"9" * 600, b"+RSP:GTFRI"]))
def test_splitter_one_frame_says_what_feed_would(data: bytes, before: bytes) -> None:
    from waygps.drivers.gv50.framing import TEXT, Splitter

    splitter = Splitter(max_frame=512)
    splitter.feed(before)
    state = (splitter.buffered, splitter._skipping, splitter.binary)
    text = splitter.one_frame(data)
    assert (splitter.buffered, splitter._skipping, splitter.binary) == state  # it changes nothing
    pieces = splitter.feed(data)
    if text is not None:  # (None: "not sure", always allowed; the caller then feeds)
        assert pieces == [(TEXT, text, len(data))] and splitter.buffered == 0


def test_the_shortcut_is_taken_for_plain_gtfri(monkeypatch: Any) -> None:
    import waygps.drivers.gv50.codec as codec_module

    calls: list[Any] = []
    original = codec_module.fast_gtfri

    def spy(*args: Any) -> Any:
        calls.append(original(*args))
        return calls[-1]

    monkeypatch.setattr(codec_module, "fast_gtfri", spy)
    codec = Gv50StreamCodec()
    codec.receive(FRAMES["S1"], NOW)  # identifies the device: general path
    assert calls == []
    codec.receive(FRAMES["S1"].replace(b"132B", b"132C") + FRAMES["S6"].replace(b"135790246811220", IMEI) + b"$",
                  NOW)
    assert [type(c) for c in calls] == [Store, type(None)]  # two positions: the general path's work


def test_one_whole_frame_per_read_skips_the_splitter() -> None:
    from waygps.drivers.gv50.framing import Splitter

    class Counting(Splitter):
        fed = 0

        def feed(self, data: bytes) -> list:
            self.fed += 1
            return super().feed(data)

    codec = Gv50StreamCodec()
    codec.splitter = Counting(codec.max_frame)
    codec.receive(FRAMES["S1"], NOW)  # identifies the device: general path
    assert codec.splitter.fed == 1
    stored = codec.receive(FRAMES["S1"].replace(b"132B", b"132C"), NOW)
    assert codec.splitter.fed == 1 and [type(a) for a in stored] == [Store] and stored[0].ack == b"+SACK:132C$"
    codec.receive(FRAMES["S1"].replace(b"132B", b"132D") + b"\r\n", NOW)  # not one frame alone: the splitter
    assert codec.splitter.fed == 2


def test_shortcut_caches_stay_bounded_and_attributes_are_never_shared() -> None:
    from datetime import timedelta

    from waygps.drivers.gv50 import fastpath

    codec = Gv50StreamCodec()
    codec.receive(FRAMES["S1"], NOW)
    start = datetime(2016, 3, 9, 11, 35, 48, tzinfo=timezone.utc)
    positions = []
    for n in range(5000):  # more fix times and cells than either cache holds
        fix = start + timedelta(seconds=n)
        data = FRAMES["S1"].replace(b"20160309113548", f"{fix:%Y%m%d%H%M%S}".encode()).replace(
            b",6AAE,", f",{n:04X},".encode())
        (store,) = codec.receive(data, NOW)
        position = store.events[0]
        assert position.device_time == fix and position.attributes["lac"] == n
        positions.append(position)
    assert len(fastpath._FIXES) <= 4096 and len(fastpath._BASES) <= 4096
    again = codec.receive(FRAMES["S1"], NOW)[0].events[0]  # a cached time and cell: a dict of its own
    assert again.attributes is not codec.receive(FRAMES["S1"], NOW)[0].events[0].attributes
    assert all(a.attributes is not b.attributes for a, b in zip(positions, positions[1:]))


def test_datagram_codec_serves_each_datagram_on_its_own() -> None:
    codec = Gv50DatagramCodec()
    first = codec.receive_datagram(FRAMES["S1"], NOW)
    other = codec.receive_datagram(FRAMES["S8"], NOW)
    assert first[0] == Identified("862894020180553") and other[0] == Identified("869606020188383")
    binary = codec.receive_datagram(bytes.fromhex("2b4556540c00fc1fbf005c45"), NOW)
    assert [type(a) for a in binary] == [Rejected] and binary[0].reason == "hex_mode"
    assert codec.receive_datagram(b"", NOW) == []
    two = codec.receive_datagram(FRAMES["S1"] + FRAMES["S8"], NOW)
    assert [getattr(a, "reason", None) for a in two if isinstance(a, Rejected)] == ["imei_mismatch"]
