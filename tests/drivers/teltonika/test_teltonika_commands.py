"""Codec 12/14 commands: texts of every command type, in-flight matching, answers, refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from teltonika_vectors import IMEI, NOW, tv
from waygps.commands.model import Command, UnsupportedCommand
from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
from waygps.drivers.teltonika.commands import (
    TYPE_NACK,
    TYPE_RESPONSE,
    command_text,
    decode_command_data,
    encode_codec12,
    encode_codec14,
    pack_imei,
)
from waygps.events import CommandAck


def command(kind: str, id: str = "c1", **params: Any) -> Command:
    return Command(id=id, imei=IMEI, type=kind, params=params)


def connected(**options: Any) -> TeltonikaStreamCodec:
    codec = TeltonikaStreamCodec(options)
    codec.receive(tv("TV-01"), NOW)
    return codec


def answer(codec: TeltonikaStreamCodec, text: bytes, now: Any = NOW) -> CommandAck:
    (store,) = codec.receive(encode_codec12(text, TYPE_RESPONSE), now)
    assert store.ack == b""
    (ack,) = store.events
    return ack


@pytest.mark.parametrize(
    "kind,params,text",
    [
        ("block", {}, "setdigout 1"),
        ("unblock", {}, "setdigout 0"),
        ("request_position", {}, "getgps"),
        ("reboot", {}, "cpureset"),
        ("set_server", {"host": "gps.example.org", "port": 8080}, "setparam 2004:gps.example.org;2005:8080"),
        ("set_server", {"host": "10.0.0.7", "port": "5027"}, "setparam 2004:10.0.0.7;2005:5027"),
        (
            "set_apn",
            {"apn": "internet.tigo.bo", "user": "u", "password": "p"},
            "setparam 2001:internet.tigo.bo;2002:u;2003:p",
        ),
        ("set_apn", {"apn": "internet"}, "setparam 2001:internet;2002:;2003:"),
        ("custom", {"text": "getver"}, "getver"),
    ],
)
def test_command_texts(kind: str, params: dict[str, Any], text: str) -> None:
    assert command_text(command(kind, **params)) == text
    assert connected().encode_command(command(kind, **params), NOW) == encode_codec12(text.encode())


@pytest.mark.parametrize(
    "output,block,unblock",
    [
        (1, "setdigout 1", "setdigout 0"),
        (2, "setdigout ?1", "setdigout ?0"),
        (3, "setdigout ??1", "setdigout ??0"),
    ],
)
def test_block_output_option(output: int, block: str, unblock: str) -> None:
    codec = connected(block_output=output)
    assert codec.encode_command(command("block"), NOW) == encode_codec12(block.encode())
    assert codec.encode_command(command("unblock", "c2"), NOW) == encode_codec12(unblock.encode())


@pytest.mark.parametrize(
    "kind,params",
    [
        ("set_server", {"host": "a;b", "port": 1}),
        ("set_server", {"host": "", "port": 1}),
        ("set_server", {"host": "h", "port": 70000}),
        ("set_server", {"host": "h", "port": "x"}),
        ("set_apn", {"apn": ""}),
        ("set_apn", {"apn": "a", "user": "x;2004:evil"}),
        ("custom", {}),
        ("custom", {"text": "  "}),
        ("custom", {"text": "caf\u00e9"}),
        ("custom", {"text": "a\nb"}),
        ("custom", {"text": "x" * 2000}),
        ("teleport", {}),
    ],
)
def test_unexpressible_commands_raise(kind: str, params: dict[str, Any]) -> None:
    codec = connected()
    with pytest.raises(UnsupportedCommand):
        codec.encode_command(command(kind, **params), NOW)
    assert not codec.commands.in_flight


def test_block_output_out_of_range_raises() -> None:
    with pytest.raises(UnsupportedCommand):
        connected(block_output=9).encode_command(command("block"), NOW)


def test_responses_match_commands_oldest_first() -> None:
    codec = connected()
    codec.encode_command(command("request_position", "a"), NOW)
    codec.encode_command(command("custom", "b", text="getver"), NOW)
    first = answer(
        codec, b"GPS:1 Sat:7 Lat:54.6 Long:25.2 Alt:120 Speed:0 Dir:0 Date: 2025/11/24 Time: 12:00:00"
    )
    second = answer(codec, b"Ver:03.27.07_00")
    assert (first.command_id, first.command_type, first.success) == ("a", "request_position", True)
    assert (second.command_id, second.command_type, second.response) == ("b", "custom", "Ver:03.27.07_00")
    unsolicited = answer(codec, b"anything")
    assert unsolicited.command_id is None and unsolicited.success is True


def test_reboot_is_not_waited_for() -> None:
    codec = connected()
    codec.encode_command(command("reboot", "r"), NOW)
    codec.encode_command(command("block", "b"), NOW)
    ack = answer(codec, b"DOUT1:ON Timeout:INFINITY")
    assert (ack.command_id, ack.success) == ("b", True)


def test_block_answer_that_is_not_a_dout_report_is_a_failure() -> None:
    codec = connected()
    codec.encode_command(command("block", "b"), NOW)
    ack = answer(codec, b"Unknown command")
    assert (ack.command_id, ack.success, ack.response) == ("b", False, "Unknown command")


def test_expired_commands_are_not_matched() -> None:
    codec = connected(command_timeout=60.0)
    codec.encode_command(command("custom", "old", text="getver"), NOW)
    codec.encode_command(command("custom", "new", text="getinfo"), NOW + timedelta(seconds=50))
    ack = answer(codec, b"INI:...", NOW + timedelta(seconds=70))
    assert ack.command_id == "new"


def test_codec14_nack_is_a_failed_acknowledgement() -> None:
    codec = connected(command_codec=14)
    sent = codec.encode_command(command("custom", "x", text="getver"), NOW)
    assert sent == encode_codec14(IMEI, b"getver")
    (store,) = codec.receive(encode_codec14(IMEI, b"", TYPE_NACK), NOW)
    (ack,) = store.events
    assert (ack.command_id, ack.success, ack.response) == ("x", False, "nACK")


def test_codec14_answer_for_another_imei_is_rejected() -> None:
    codec = connected(command_codec=14)
    codec.encode_command(command("custom", "x", text="getver"), NOW)
    (rejected,) = codec.receive(encode_codec14("352093081452251", b"Ver:1", TYPE_RESPONSE), NOW)
    assert rejected.reason == "imei_mismatch"
    assert codec.commands.in_flight  # still waiting for its own answer


def test_a_command_frame_from_the_device_is_rejected() -> None:
    (rejected,) = connected().receive(tv("TV-07"), NOW)
    assert rejected.reason == "unexpected_command"


def test_unknown_command_codec_option_raises() -> None:
    with pytest.raises(UnsupportedCommand):
        connected(command_codec=13).encode_command(command("block"), NOW)


def test_in_flight_queue_is_bounded() -> None:
    codec = connected()
    for n in range(100):
        codec.encode_command(command("custom", f"c{n}", text="getver"), NOW)
    assert len(codec.commands.in_flight) == 16
    assert answer(codec, b"x").command_id == "c84"


def test_udp_has_no_commands() -> None:
    with pytest.raises(UnsupportedCommand):
        TeltonikaDatagramCodec().encode_command(command("block"), NOW)


def test_pack_imei_and_malformed_command_frames() -> None:
    assert pack_imei("352093081452251").hex() == "0352093081452251"
    with pytest.raises(ValueError):
        pack_imei("35209308145225X")
    for data in (
        b"\x0c\x01\x06",
        b"\x0c\x01\x06\x00\x00\x00\x05ab\x01",
        b"\x0e\x01\x06\x00\x00\x00\x02ab\x01",
        b"\x0e\x01\x06\x00\x00\x00\x08\xab\xcd\xef\x00\x00\x00\x00\x00\x01",
        b"\x0d\x01\x05\x00\x00\x00\x02ab\x01",
    ):
        with pytest.raises(ValueError):
            decode_command_data(data)


@pytest.mark.parametrize("kind, text, block_output, cuts", [
    ("block", None, 1, True),
    ("block", None, 2, True),
    ("unblock", None, 1, False),
    ("custom", "setdigout 1", 1, True),
    ("custom", "setdigout ?1", 1, True),  # DOUT2, though block_output is 1: any output counts
    ("custom", "  SETDIGOUT 01 60", 1, True),
    ("custom", "setdigout 0?", 1, False),
    ("custom", "setdigout", 1, False),
    ("custom", "getgps", 1, False),
    ("reboot", None, 1, False),
])
def test_cuts_engine(kind: str, text: str | None, block_output: int, cuts: bool) -> None:
    params = {} if text is None else {"text": text}
    codec = TeltonikaStreamCodec({"block_output": block_output})
    assert codec.cuts_engine(Command(id="c", imei=IMEI, type=kind, params=params)) is cuts
