"""Sans-IO codec for the "WB" protocol (see ``protocol.py``): framing by ``waygps.framing``.

``PreambleFramer`` cuts frames (and finds the next ``WB`` after garbage or a
frame with a wrong length); this module checks the CRC, decodes the body and
decides the actions. The login is answered once the allow-list said yes
(``Identified.accept``); a position only once it is stored (``Store.ack``).
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from waygps.actions import Action, Identified, Rejected, Send, Store
from waygps.commands.model import Command, UnsupportedCommand
from waygps.events import Heartbeat, Position
from waygps.framing import FRAME, GarbageBudget, PreambleFramer, from_epoch, plausible_time

from waygps_binary_example import protocol as wb

PROTOCOL = "wbin"
_SERIAL = struct.Struct(">H")


class WbCodec:
    """One TCP connection."""

    def __init__(self, max_frame: int = wb.MAX_FRAME) -> None:
        self.framer = PreambleFramer(preamble=wb.PREAMBLE, header=wb.HEADER, length_field=1, adjust=4,
                                     min_length=5, max_length=max_frame)
        self.garbage = GarbageBudget(max_frame * 2)
        self.imei: str | None = None
        self.closed = False

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        if self.closed:
            return []
        actions: list[Action] = []
        for kind, raw, size in self.framer.feed(data):
            if kind is FRAME:
                good = self._frame(raw, now, actions)
            else:  # NOISE: bytes that are not a frame (before "WB", or a frame whose length is wrong)
                actions.append(Rejected("noise", raw.hex().encode()))
                good = False
            if good:
                self.garbage.reset()
            else:
                close = self.garbage.spend(size)
                if close is not None:
                    actions.append(close)
                    self.closed = True
                    break
        return actions

    def _frame(self, raw: bytes, now: datetime, actions: list[Action]) -> bool:
        covered, (crc,) = raw[2:-2], _SERIAL.unpack_from(raw, len(raw) - 2)
        if wb.crc16(covered) != crc:
            actions.append(Rejected("bad_crc", raw[:32].hex().encode()))  # no answer: the device sends it again
            return False
        kind = raw[4]
        body = raw[5:-4]
        (serial,) = _SERIAL.unpack_from(raw, len(raw) - 4)
        if kind == wb.LOGIN:
            return self._login(body, serial, raw, actions)
        if self.imei is None:
            actions.append(Rejected("not_logged_in", raw[:32].hex().encode()))
            return False
        if kind == wb.HEARTBEAT:
            actions.append(Send(wb.ack(kind, serial)))
            actions.append(Store([Heartbeat(imei=self.imei, protocol=PROTOCOL, server_time=now)]))
            return True
        if kind == wb.POSITION and len(body) == wb.POSITION_BODY.size:
            actions.append(Store([self._position(body, serial, raw, now)], ack=wb.ack(kind, serial)))
            return True
        actions.append(Rejected("unknown_type" if kind != wb.POSITION else "bad_body", raw[:32].hex().encode()))
        return False

    def _login(self, body: bytes, serial: int, raw: bytes, actions: list[Action]) -> bool:
        if not (len(body) == 15 and body.isdigit()):
            actions.append(Rejected("bad_imei", raw[:32].hex().encode()))
            return False
        imei = body.decode("ascii")
        if self.imei is not None:
            if imei != self.imei:
                actions.append(Rejected("imei_mismatch", body))
                return False
            actions.append(Send(wb.ack(wb.LOGIN, serial)))  # a repeated login: answer it again
            return True
        self.imei = imei
        actions.append(Identified(imei, accept=wb.ack(wb.LOGIN, serial)))
        return True

    def _position(self, body: bytes, serial: int, raw: bytes, now: datetime) -> Position:
        unix_time, lat, lon, speed, course, flags = wb.POSITION_BODY.unpack(body)
        when = plausible_time(from_epoch(unix_time), now)
        latitude, longitude = lat / 1e6, lon / 1e6
        in_range = -90 <= latitude <= 90 and -180 <= longitude <= 180 and course < 360
        assert self.imei is not None
        return Position(
            imei=self.imei, protocol=PROTOCOL, device_time=when.time, server_time=now, event="position",
            key=f"{unix_time}:{serial}",  # the device re-sends an unacknowledged frame unchanged
            valid=bool(flags & 1) and in_range and when.from_device,
            latitude=latitude if in_range else None, longitude=longitude if in_range else None,
            speed=speed / 10, course=float(course) if in_range else None, ignition=bool(flags & 2),
            attributes=when.attributes(), raw=raw.hex(),
        )

    def encode_command(self, command: Command, now: datetime) -> bytes:
        raise UnsupportedCommand(f"wbin devices take no commands ({command.type})")


def stream_codec(listener: Any) -> WbCodec:
    return WbCodec(int(listener.option("max_frame_bytes", wb.MAX_FRAME)))
