"""A simulated Queclink GV50 on the @Track ASCII protocol (TCP long connection or UDP).

What it sends: ``+RESP:GTFRI`` periodic reports, ``+RESP:GTIGN`` / ``GTIGF``
when the ignition changes, ``+ACK:GTHBD`` heartbeats on an idle link and
``+ACK:GT<CMD>`` answers to ``AT+GT<CMD>`` commands (with the command's
serial). Every message carries a count (0000-FFFF) that the server's
``+SACK:<count>$`` echoes; a report without its SACK is sent again as
``+BUFF:`` with the same body, send time and count, as the device replays its
buffer. The device status of a GTFRI shows the ignition and output 1, so a
block (``AT+GTOUT=<password>,1,...``) is visible in the next report.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from waygps.simulate.device import DeviceModel, Pending
from waygps.simulate.track import Fix

#: Protocol version: device type 09 (the GV50 family code known to decoders), version 04.02.
VERSION = "090402"
CELL = "0736,0003,6AAE,3381,00"
_SACK = re.compile(rb"\+SACK:(GTHBD,[^,$]*,)?([0-9A-Fa-f]{4})\$")
_COMMAND = re.compile(rb"AT\+GT([A-Z]{3})=([^$]*)\$")


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y%m%d%H%M%S")


def _hours(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:05d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Gv50Device(DeviceModel):
    protocol = "gv50"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count = self.rng.randrange(0x10000)
        self.buffer = b""
        self.ignition_since = self.track.time
        self.engine_seconds = self.rng.uniform(0, 3_000_000)
        self.battery = self.rng.randrange(60, 101)

    def _next_count(self) -> str:
        self.count = (self.count + 1) & 0xFFFF
        return f"{self.count:04X}"

    def _block(self, fix: Fix, now: float) -> str:
        accuracy = 1 + int(self.rng.random() * 3)
        return (f"{accuracy},{fix.speed:.1f},{int(fix.heading)},{fix.altitude:.1f},{fix.longitude:.6f},"
                f"{fix.latitude:.6f},{_stamp(fix.time)},{CELL}")

    def report(self, now: float) -> list[bytes]:
        fix = self.track.advance(now)
        count = self._next_count()
        send = _stamp(now)
        if fix.event is not None:
            duration = int(now - self.ignition_since)
            self.ignition_since = now
            word = "GTIGN" if fix.event == "ignition_on" else "GTIGF"
            text = (f"+RESP:{word},{VERSION},{self.imei},,{duration},{self._block(fix, now)},"
                    f"{_hours(self.engine_seconds)},{fix.odometer_km:.1f},{send},{count}$")
        else:
            if fix.ignition:
                self.engine_seconds += 1
            state = ("22" if fix.moving else "21") if fix.ignition else ("12" if fix.moving else "11")
            status = f"{state}{1 if fix.ignition else 0:02X}{1 if self.output else 0:02X}"
            text = (f"+RESP:GTFRI,{VERSION},{self.imei},,{12000 + self.rng.randrange(800)},10,1,"
                    f"{self._block(fix, now)},{fix.odometer_km:.1f},{_hours(self.engine_seconds)},,,"
                    f"{self.battery},{status},,,,{send},{count}$")
        return [self._keep(count, text.encode(), now)]

    def resend_form(self, pending: Pending) -> bytes:
        return b"+BUFF:" + pending.frame[6:]

    def heartbeat(self, now: float) -> list[bytes]:
        self.stats.heartbeats += 1
        self.last_sent = now
        return [f"+ACK:GTHBD,{VERSION},{self.imei},,{_stamp(now)},{self._next_count()}$".encode()]

    def receive(self, data: bytes, now: float) -> list[bytes]:
        self.buffer += data
        if len(self.buffer) > 65536:  # a server that never ends a frame: start again
            self.stats.unexpected += 1
            self.buffer = b""
        out: list[bytes] = []
        while b"$" in self.buffer:
            message, _, self.buffer = self.buffer.partition(b"$")
            message = message.lstrip(b"\r\n\x00 ") + b"$"
            sack = _SACK.fullmatch(message)
            if sack:
                if sack.group(1):
                    self.stats.heartbeat_acks += 1
                else:
                    self._acknowledged(sack.group(2).decode().upper(), now)
                continue
            command = _COMMAND.fullmatch(message)
            if command:
                out.extend(self._answer(command.group(1).decode(), command.group(2).decode("ascii", "replace"),
                                        message, now))
                continue
            self.stats.unexpected += 1
        return out

    def _answer(self, word: str, body: str, message: bytes, now: float) -> list[bytes]:
        self._command(message.decode("ascii", "replace"))
        fields = body.split(",")
        if fields[0] != self.settings.password or len(fields) < 2:
            return []  # a wrong password is ignored without an answer, as the device does
        serial = fields[-1]
        if word == "OUT":
            self.output = fields[1] == "1"
        self.stats.command_answers += 1
        self.last_sent = now
        return [f"+ACK:GT{word},{VERSION},{self.imei},,{serial},{_stamp(now)},{self._next_count()}$".encode()]
