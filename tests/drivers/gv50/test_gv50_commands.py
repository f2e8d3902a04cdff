"""AT+GT commands for WayGPS command types, and their acknowledgements matched back."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from waygps.actions import Store
from waygps.commands.model import Command, UnsupportedCommand
from waygps.config import ListenerConfig
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec, stream_codec
from waygps.events import CommandAck

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"


def command(type: str, serial: str = "00A1", **params: Any) -> Command:
    return Command(id="c1", imei=IMEI, type=type, params=params, serial=serial)


@pytest.mark.parametrize("cmd, expected", [
    (command("block"), b"AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,00A1$"),
    (command("unblock", "00A2"), b"AT+GTOUT=gv50,0,,,0,0,0,0,0,0,0,,,,,,,00A2$"),
    (command("set_server", "0011", host="new.server.example", port=5004),
     b"AT+GTSRI=gv50,3,,1,new.server.example,5004,,,,5,1,,,,,0011$"),
    (command("set_apn", "0010", apn="internet.operator"), b"AT+GTBSI=gv50,internet.operator,,,,,,,0010$"),
    (command("set_apn", "0012", apn="apn.x", user="u", password="p"), b"AT+GTBSI=gv50,apn.x,u,p,,,,,0012$"),
    (command("reboot", "0013"), b"AT+GTRTO=gv50,3,,,,,,0013$"),
    (command("request_position", "0014"), b"AT+GTRTO=gv50,1,,,,,,0014$"),
    (command("block", "00A3", device_password="secret"), b"AT+GTOUT=secret,1,,,0,0,0,0,0,0,0,,,,,,,00A3$"),
    (command("reboot", "00A4", password="gv55"), b"AT+GTRTO=gv55,3,,,,,,00A4$"),
    (command("custom", "00A5", text="AT+GTFRI=gv50,1,1,,,0000,0000,,30,,,,,,,,,,,,0005$"),
     b"AT+GTFRI=gv50,1,1,,,0000,0000,,30,,,,,,,,,,,,0005$"),
    (command("custom", "00A6", text="AT+GTRTO=gv50,8,,,,,,"), b"AT+GTRTO=gv50,8,,,,,,00A6$"),
])
def test_encoded_commands(cmd: Command, expected: bytes) -> None:
    assert Gv50StreamCodec().encode_command(cmd, NOW) == expected


def test_listener_settings_reach_the_commands() -> None:
    listener = ListenerConfig(driver="gv50", port=0, ack=False,
                              options={"password": "fleet1", "heartbeat_minutes": 15})
    codec = stream_codec(listener)
    assert codec.encode_command(command("set_server", host="h.example", port=9000), NOW) == (
        b"AT+GTSRI=fleet1,3,,1,h.example,9000,,,,15,0,,,,,00A1$")


@pytest.mark.parametrize("cmd", [
    command("block", serial="12345"),
    command("block", serial="00G1"),
    command("block", device_password="bad,pw"),
    command("set_server", host="a,b", port=1),
    command("set_server", host="h", port=70000),
    command("set_server", host="", port=5004),
    command("set_apn", apn="x$y"),
    command("set_apn"),
    command("custom", text="AT+GTOUT=gv50,1$AT+GTRTO=gv50,3,,,,,,0001$"),
    command("custom", text="AT+GTOUT=gv50,1,AT+GTRTO=1,0001"),
    command("custom", text="hello"),
    command("custom", text="AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,XYZ$"),
    command("custom", text="AT+GTOUT=gv50\r\n,0001$"),
    command("shutdown"),
])
def test_commands_that_cannot_be_expressed(cmd: Command) -> None:
    with pytest.raises(UnsupportedCommand):
        Gv50StreamCodec().encode_command(cmd, NOW)


def acks(actions: list[Any]) -> list[CommandAck]:
    return [e for a in actions if isinstance(a, Store) for e in a.events if isinstance(e, CommandAck)]


def test_acknowledgement_matched_to_the_command_this_connection_sent() -> None:
    codec = Gv50StreamCodec()
    codec.encode_command(command("block", "00A1"), NOW)
    frame = f"+ACK:GTOUT,060228,{IMEI},,00A1,20090214093254,11F0$".encode()
    actions = codec.receive(frame, NOW)
    (ack,) = acks(actions)
    assert (ack.command_id, ack.command_type, ack.serial, ack.success) == ("c1", "block", "00A1", True)
    assert ack.response == frame.decode().rstrip("$")
    assert [a.ack for a in actions if isinstance(a, Store)] == [b"+SACK:11F0$"]
    (again,) = acks(codec.receive(frame, NOW))  # a repeated ACK no longer names the command
    assert (again.command_id, again.command_type, again.serial) == (None, None, "00A1")


def test_acknowledgement_of_a_command_sent_on_another_connection() -> None:
    def ack_of(frame: str) -> CommandAck:
        (ack,) = acks(Gv50StreamCodec().receive(frame.encode(), NOW))
        return ack

    assert ack_of(f"+ACK:GTSRI,060228,{IMEI},,0011,20090214093254,11F0$").command_type == "set_server"
    assert ack_of(f"+ACK:GTBSI,060228,{IMEI},,0010,20090214093254,11F0$").command_type == "set_apn"
    assert ack_of(f"+ACK:GTRTO,060228,{IMEI},,RTL,0014,20090214093254,11F0$").command_type == "request_position"
    assert ack_of(f"+ACK:GTRTO,060228,{IMEI},,REBOOT,0013,20090214093254,11F0$").command_type == "reboot"
    out = ack_of(f"+ACK:GTOUT,060228,{IMEI},,00A1,20090214093254,11F0$")
    assert (out.command_type, out.command_id, out.serial) == (None, None, "00A1")


def test_custom_command_matched_by_the_serial_it_carries() -> None:
    codec = Gv50DatagramCodec()
    codec.encode_command(command("custom", "0099", text="AT+GTFRI=gv50,1,1,,,0000,0000,,30,,,,,,,,,,,,0005$"), NOW)
    (ack,) = acks(codec.receive_datagram(f"+ACK:GTFRI,060228,{IMEI},,0005,20090214093254,11F0$".encode(), NOW))
    assert (ack.command_id, ack.command_type) == ("c1", "custom")


def test_acknowledgement_without_a_serial_is_rejected() -> None:
    actions = Gv50StreamCodec().receive(f"+ACK:GTOUT,060228,{IMEI},,20090214093254,11F0$".encode(), NOW)
    assert [getattr(a, "reason", None) for a in actions][-1] == "bad_ack"
    assert not acks(actions)


def test_acknowledgement_sack_follows_the_listener_setting() -> None:
    codec = Gv50StreamCodec(ack=False)
    actions = codec.receive(f"+ACK:GTOUT,060228,{IMEI},,00A1,20090214093254,11F0$".encode(), NOW)
    assert [a.ack for a in actions if isinstance(a, Store)] == [b""] and len(acks(actions)) == 1


def test_remembered_commands_are_bounded() -> None:
    codec = Gv50StreamCodec()
    for n in range(1000):
        codec.encode_command(command("reboot", f"{n:04X}"), NOW)
    assert len(codec._sent) <= 256


@pytest.mark.parametrize("kind, text, cuts", [
    ("block", None, True),
    ("unblock", None, False),
    ("reboot", None, False),
    ("custom", "AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,$", True),
    ("custom", "at+gtout=gv50,1,,,0,0,0,0,0,0,0,,,,,,,0001$", True),  # case does not hide it
    ("custom", "AT+GTOUT=gv50,0,,,1,0,0,0,0,0,0,,,,,,,$", True),  # output 2
    ("custom", "AT+GTOUT=gv50,0,,,0,0,0,0,0,0,1,,,,,,,$", True),  # output 4
    ("custom", "AT+GTOUT=gv50,0,5,3,0,0,0,0,0,0,0,,,,,,,$", True),  # a pulse train on output 1
    ("custom", "AT+GTOUT=gv50,0,,,0,0,0,0,0,0,0,,,,,,,$", False),  # every output held off
    ("custom", " AT+GTOUT=gv50,0$", False),
    ("custom", "AT+GTRTO=gv50,1,,,,,,$", False),
])
def test_cuts_engine(kind: str, text: str | None, cuts: bool) -> None:
    params = {} if text is None else {"text": text}
    codec = Gv50StreamCodec()
    assert codec.cuts_engine(command(kind, **params)) is cuts
    assert Gv50DatagramCodec().cuts_engine(command(kind, **params)) is cuts


def test_driver_check_command_gives_the_reason() -> None:
    from waygps.drivers.gv50.driver import driver

    driver.check_command(command("custom", text="AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,$"))
    with pytest.raises(UnsupportedCommand, match="exactly one command"):
        driver.check_command(command("custom", text="AT+GTOUT=gv50,1$,$"))
    assert driver.cuts_engine(command("custom", text="AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,$"))
