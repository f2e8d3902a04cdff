"""Sans-IO codec for lines ``IMEI;latitude;longitude;speed`` (no Twisted here)."""

from __future__ import annotations

from datetime import datetime

from waygps.actions import Identified, Rejected, Store
from waygps.commands.model import UnsupportedCommand
from waygps.events import Position

MAX_LINE = 256


class SemicolonCodec:
    def __init__(self) -> None:
        self._buffer = b""

    def receive(self, data: bytes, now: datetime) -> list:
        self._buffer += data
        actions: list = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            actions.extend(self._line(line.strip(), now))
        if len(self._buffer) > MAX_LINE:
            actions.append(Rejected("line_too_long", self._buffer[:32]))
            self._buffer = b""
        return actions

    def _line(self, line: bytes, now: datetime) -> list:
        if not line:
            return []
        try:
            imei, lat, lon, speed = line.decode("ascii").split(";")
            latitude, longitude, kmh = float(lat), float(lon), float(speed)
        except (UnicodeDecodeError, ValueError):
            return [Rejected("malformed", line, reply=b"ERR\n")]
        position = Position(
            imei=imei, protocol="example", device_time=now, server_time=now, event="report",
            key=line.decode("ascii"), valid=True, latitude=latitude, longitude=longitude, speed=kmh,
            attributes={"time_source": "server"}, raw=line.decode("ascii"),
        )
        return [Identified(imei), Store([position], ack=b"OK\n")]

    def encode_command(self, command, now):
        raise UnsupportedCommand(command.type)
