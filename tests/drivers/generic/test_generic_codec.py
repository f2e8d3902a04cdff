"""The stream and datagram codecs: line framing, limits, replies, options, commands."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from waygps.actions import Identified, Rejected, Store
from waygps.commands.model import Command, UnsupportedCommand
from waygps.config import ListenerConfig
from waygps.drivers.generic.codec import GenericDatagramCodec, GenericStreamCodec, Settings
from waygps.drivers.generic.driver import driver

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LINE = b"IMEI: 123456789012345, LAT: -34.603722, LON: -58.381592, SPD: 45, HDG: 180"


def stream(**options) -> GenericStreamCodec:
    ack = options.pop("ack", True)
    return GenericStreamCodec(Settings.from_listener(options, ack=ack))


def summary(actions):
    """Each action in a comparable shape."""
    out = []
    for a in actions:
        if isinstance(a, Identified):
            out.append(("id", a.imei, a.reject))
        elif isinstance(a, Store):
            out.append(("store", len(a.events), a.ack, a.nack))
        elif isinstance(a, Rejected):
            out.append(("rejected", a.reason, a.reply))
        else:
            out.append(a)
    return out


def test_one_line_identifies_then_stores_with_ok():
    actions = stream().receive(LINE + b"\n", NOW)
    assert summary(actions) == [("id", "123456789012345", b"ERR unknown_device\n"),
                                ("store", 1, b"OK 1\n", b"ERR store_failed\n")]
    assert actions[1].events[0].latitude == -34.603722


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_line_endings(ending):
    c = stream()
    actions = c.receive(LINE + ending + LINE + ending, NOW)
    assert [type(a) for a in actions] == [Identified, Store, Identified, Store]


def test_line_split_across_reads_and_blank_lines_skipped():
    c = stream()
    assert c.receive(LINE[:10], NOW) == []
    assert c.receive(LINE[10:30], NOW) == []
    actions = c.receive(LINE[30:] + b"\n\n  \r\n", NOW)
    assert [type(a) for a in actions] == [Identified, Store]


def test_ok_counts_the_reports_of_the_line():
    line = (b'[{"id": "a", "lat": 1, "lon": 2, "time": 1714560000},'
            b' {"id": "a", "lat": 1, "lon": 2, "time": 1714560060}]\n')
    assert summary(stream().receive(line, NOW))[1] == ("store", 2, b"OK 2\n", b"ERR store_failed\n")


def test_bad_line_gets_err_with_reason_and_the_connection_goes_on():
    c = stream()
    actions = c.receive(b"id=a,lat=91,lon=2\n" + LINE + b"\n", NOW)
    assert summary(actions)[0] == ("rejected", "lat_out_of_range", b"ERR lat_out_of_range\n")
    assert actions[0].excerpt == b"id=a,lat=91,lon=2"
    assert [type(a) for a in actions[1:]] == [Identified, Store]


def test_another_device_on_the_same_connection_is_rejected():
    c = stream()
    c.receive(b"id=a,lat=1,lon=2\n", NOW)
    assert summary(c.receive(b"id=b,lat=1,lon=2\n", NOW)) == [("rejected", "device_changed",
                                                                b"ERR device_changed\n")]
    assert [type(a) for a in c.receive(b"id=a,lat=1,lon=2\n", NOW)] == [Identified, Store]


def test_over_long_line_is_discarded_once_and_the_next_line_works():
    c = stream(max_line_bytes=64)
    actions = c.receive(b"x" * 50, NOW) + c.receive(b"y" * 50, NOW) + c.receive(b"z" * 500, NOW)
    assert summary(actions) == [("rejected", "line_too_long", b"ERR line_too_long\n")]
    assert c.buffered <= 64
    actions = c.receive(b"zzz\nid=a,lat=1,lon=2\n", NOW)
    assert [type(a) for a in actions] == [Identified, Store]


def test_over_long_line_arriving_complete_is_discarded():
    c = stream(max_line_bytes=64)
    actions = c.receive(b"id=a,lat=1,lon=2,pad=" + b"p" * 80 + b"\nid=a,lat=1,lon=2\n", NOW)
    assert summary(actions)[0] == ("rejected", "line_too_long", b"ERR line_too_long\n")
    assert [type(a) for a in actions[1:]] == [Identified, Store]


def test_acks_switched_off():
    c = stream(ack=False)
    assert summary(c.receive(LINE + b"\nid=a,lat=95,lon=1\n", NOW)) == [
        ("id", "123456789012345", b""), ("store", 1, b"", b""), ("rejected", "lat_out_of_range", b"")]
    assert summary(c.receive(b"x" * 5000, NOW)) == [("rejected", "line_too_long", b"")]


def test_a_line_that_begins_like_a_method_waits_for_more():
    c = stream()
    assert c.receive(b"PO", NOW) == []
    assert summary(c.receive(b"\n", NOW)) == [("rejected", "unknown_format", b"ERR unknown_format\n")]


def test_invalid_utf8_is_replaced_not_raised():
    assert summary(stream().receive(b"id=\xff\xfe,lat=1,lon=2\n", NOW)) == [
        ("rejected", "bad_id", b"ERR bad_id\n")]
    actions = stream().receive(b"id=a,lat=1,lon=2,name=\xff\n", NOW)
    assert actions[1].events[0].attributes["name"] == "\ufffd"


# --- datagrams -------------------------------------------------------------------------------


def datagrams(**options) -> GenericDatagramCodec:
    ack = options.pop("ack", True)
    return GenericDatagramCodec(Settings.from_listener(options, ack=ack))


def test_datagram_lines_of_several_devices():
    actions = datagrams().receive_datagram(b"id=a,lat=1,lon=2\nid=b,lat=3,lon=4\nid=c,lat=99,lon=4", NOW)
    assert summary(actions)[0:4:2] == [("id", "a", b"ERR unknown_device\n"),
                                       ("id", "b", b"ERR unknown_device\n")]
    assert summary(actions)[4] == ("rejected", "lat_out_of_range", b"ERR lat_out_of_range\n")
    assert actions[1].ack == b"OK 1\n"


def test_datagram_limits():
    assert summary(datagrams(max_line_bytes=32).receive_datagram(b"id=a,lat=1,lon=2," + b"p" * 40, NOW)) == [
        ("rejected", "line_too_long", b"ERR line_too_long\n")]
    assert summary(datagrams().receive_datagram(b"\r\n", NOW)) == [("rejected", "empty", b"")]


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options,message", [
    ({"speed_unit": "mph"}, "speed_unit"),
    ({"max_line_bytes": 0}, "max_line_bytes"),
    ({"max_http_body_bytes": "big"}, "max_http_body_bytes"),
    ({"server_time_window": -1}, "server_time_window"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        driver.stream_codec(ListenerConfig(driver="generic", port=1, name="gen", options={**driver.options,
                                                                                         **options}))


def test_driver_declares_its_options_and_transports():
    assert driver.name == "generic"
    assert driver.options == {"max_line_bytes": 4096, "speed_unit": "kmh", "server_time_window": 60.0,
                              "max_http_body_bytes": 65536}
    assert driver.transports == {"tcp", "udp"}


def test_driver_decode_reads_a_capture_of_many_senders():
    capture = (LINE + b"\nid=a,lat=95,lon=1\nid=b,lat=1,lon=2\n"
               b"GET /?id=p1&lat=1&lon=2 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST / HTTP/1.1\r\nContent-Length: 32\r\n\r\n{\"id\": \"p2\", \"lat\": 1, \"lon\": 2}"
               b"id=c,lat=5,lon=6")
    out = driver.decode(capture, NOW)
    assert [getattr(item, "imei", None) or item.reason for item in out] == [
        "123456789012345", "lat_out_of_range", "b", "p1", "p2", "c"]
    assert driver.decode(b"id=a,lat=1,lon=2", NOW, transport="udp")[0].imei == "a"


def test_driver_decode_reports_a_cut_request_and_a_broken_one():
    assert [r.reason for r in driver.decode(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{", NOW)] == [
        "incomplete_http"]
    out = driver.decode(b"GET / HTTP/9\r\n\r\nid=a,lat=1,lon=2\n", NOW)
    assert [r.reason for r in out] == ["http_version"]  # framing is lost after a broken request


# --- commands -----------------------------------------------------------------------------------


def test_custom_command_is_a_line_others_unsupported():
    c = stream()
    command = Command(id="1", imei="a", type="custom", params={"text": "REPORT NOW"})
    assert c.encode_command(command, NOW) == b"REPORT NOW\n"
    assert datagrams().encode_command(command, NOW) == b"REPORT NOW\n"
    with pytest.raises(UnsupportedCommand):
        c.encode_command(Command(id="2", imei="a", type="block"), NOW)
    with pytest.raises(UnsupportedCommand):
        c.encode_command(Command(id="3", imei="a", type="custom", params={"text": "a\nb"}), NOW)
    c.receive(b"GET /?id=a&lat=1&lon=2 HTTP/1.1\r\n\r\n", NOW)
    with pytest.raises(UnsupportedCommand):
        c.encode_command(command, NOW)


def test_codec_modules_import_nothing_from_twisted():
    import ast
    from pathlib import Path

    import waygps.drivers.generic.codec as codec_module

    folder = Path(codec_module.__file__).parent
    for name in ("formats.py", "http.py", "codec.py"):
        tree = ast.parse((folder / name).read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[0] == "twisted"], name


def test_a_rejected_http_request_keeps_nothing_it_buffered() -> None:
    # Found by the fuzzing campaign: the reader of a refused request held the whole read until the
    # connection was gone.
    from waygps.fuzzing import retained

    codec = GenericStreamCodec(Settings.from_listener({}))
    data = b"POST / HTTP/1.1\r\nContent-Length: 90000\r\n\r\n" + b"a" * 90000
    actions = codec.receive(data, NOW)
    assert [type(a).__name__ for a in actions] == ["Rejected", "Close"]
    assert retained(codec) < 1000


def test_data_after_an_http_request_is_counted_and_not_kept() -> None:
    # Found by the fuzzing campaign: bytes pipelined after a request stayed in the reader.
    from waygps.fuzzing import retained

    codec = GenericStreamCodec(Settings.from_listener({}))
    data = b"GET /?id=p&lat=1&lon=2 HTTP/1.1\r\n\r\n" + b"x" * 80000
    actions = codec.receive(data, NOW)
    assert [type(a).__name__ for a in actions] == ["Identified", "Store", "Rejected"]
    assert actions[-1].reason == "http_pipelined"
    assert retained(codec) < 2000
