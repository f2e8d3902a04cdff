"""Sans-IO codec for the example text protocol (no Twisted here).

One report per line, fields separated by ``;``::

    IMEI;LAT;LON;SPEED[;TIME[;EVENT]]     a position: degrees, km/h, TIME = UTC YYYYMMDDhhmmss
    IMEI;HB                               a heartbeat (the device is alive, nothing to store)

``EVENT`` ``SOS`` also raises an alarm. A report is answered ``OK`` once stored,
a heartbeat ``HB`` at once, a malformed line ``ERR``. A connection carries
one device; a line naming another one is rejected.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from waygps.actions import Action, Close, Flagged, Identified, Rejected, Send, Store
from waygps.commands.model import Command, UnsupportedCommand
from waygps.events import Alarm, Heartbeat, Position
from waygps.framing import FRAME, OVERSIZE, GarbageBudget, TextFramer, plausible_time

PROTOCOL = "example"
OPTIONS = {"max_line_bytes": 256}  # the driver's own listener keys, with their defaults
ALARMS = {"SOS": "panic button pressed"}


class LineError(ValueError):
    """A line that cannot be a report; ``reason`` is the metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise LineError("bad_time") from None


def line_events(line: bytes, now: datetime) -> tuple[str, list[Any], bytes]:
    """(IMEI, events, acknowledgement) of one line; raises ``LineError``."""
    try:
        fields = line.decode("ascii").split(";")
    except UnicodeDecodeError:
        raise LineError("malformed") from None
    imei = fields[0]
    if not (len(imei) == 15 and imei.isdigit()):
        raise LineError("malformed")
    if fields[1:] == ["HB"]:
        return imei, [Heartbeat(imei=imei, protocol=PROTOCOL, server_time=now)], b""
    if not 4 <= len(fields) <= 6:
        raise LineError("malformed")
    try:
        latitude, longitude, speed = float(fields[1]), float(fields[2]), float(fields[3])
    except ValueError:
        raise LineError("malformed") from None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or not 0 <= speed < 1000:
        raise LineError("out_of_range")
    when = plausible_time(parse_time(fields[4]) if len(fields) > 4 and fields[4] else None, now)
    event = fields[5].upper() if len(fields) > 5 and fields[5] else "report"
    text = line.decode("ascii")
    position = Position(
        imei=imei, protocol=PROTOCOL, device_time=when.time, server_time=now, event=event,
        # what identifies the report on the device's side: a re-sent line maps to the same document
        key=text if when.from_device else f"{text}@{now.isoformat()}",
        valid=True, latitude=latitude, longitude=longitude, speed=speed,
        attributes=when.attributes(), raw=text,
    )
    events: list[Any] = [position]
    if event in ALARMS:
        events.append(Alarm(imei=imei, protocol=PROTOCOL, server_time=now, alarm=event.lower(),
                            message=ALARMS[event], position_id=position.document_id))
    return imei, events, b"OK\n"


def encode_command(command: Command) -> bytes:
    """Only ``custom`` means something to this device: ``CMD;<text>``."""
    if command.type != "custom":
        raise UnsupportedCommand(f"example devices take only custom commands, not {command.type}")
    text = str(command.params.get("text", ""))
    if not text or not text.isascii() or "\n" in text:
        raise UnsupportedCommand("a custom command is one line of ASCII text")
    return f"CMD;{text}\n".encode("ascii")


class SemicolonCodec:
    """One TCP connection."""

    def __init__(self, max_line: int = 256) -> None:
        self.framer = TextFramer(end=b"\n", max_length=max_line)  # CR before LF is stripped
        self.garbage = GarbageBudget(4 * max_line)
        self.imei: str | None = None
        self.closed = False

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        if self.closed:
            return []
        return self._pieces(self.framer.feed(data), now)

    def finish(self, now: datetime) -> list[Action]:
        """End of a capture (``waygps decode``): a last line without its LF counts too."""
        return [] if self.closed else self._pieces(self.framer.flush(), now)

    def _pieces(self, pieces: list, now: datetime) -> list[Action]:
        actions: list[Action] = []
        for kind, data, size in pieces:
            if kind is FRAME:
                actions.extend(self._line(data, now, size))
            else:  # an overlong line (its later parts come with no excerpt), or blank bytes (no excerpt)
                if data:
                    actions.append(Rejected("line_too_long", data, reply=b"ERR\n"))
                close = self.garbage.spend(size)
                if close is not None:
                    actions.append(close)
            if actions and isinstance(actions[-1], Close):
                self.closed = True
                break
        return actions

    def _line(self, line: bytes, now: datetime, size: int) -> list[Action]:
        try:
            imei, events, ack = line_events(line, now)
        except LineError as error:
            close = self.garbage.spend(size)
            return [Rejected(error.reason, line, reply=b"ERR\n")] + ([close] if close else [])
        actions: list[Action] = []
        if self.imei is None:
            self.imei = imei
            actions.append(Identified(imei, reject=b"ERR unknown device\n"))
        elif imei != self.imei:
            return [Rejected("imei_mismatch", line, reply=b"ERR\n")]
        self.garbage.reset()
        if isinstance(events[0], Heartbeat):
            actions.append(Send(b"HB\n"))  # answered at once: nothing waits for the store
        elif events[0].attributes.get("time_rejected", "missing") != "missing":  # a time was sent, and refused
            actions.append(Flagged("implausible_time", line))
        actions.append(Store(events, ack=ack))
        return actions

    def encode_command(self, command: Command, now: datetime) -> bytes:
        return encode_command(command)


class SemicolonDatagramCodec:
    """A UDP listener: each datagram holds one or more lines, answers go to its sender."""

    def __init__(self, max_line: int = 256) -> None:
        self.max_line = max_line

    def receive_datagram(self, data: bytes, now: datetime) -> list[Action]:
        framer = TextFramer(end=b"\n", max_length=self.max_line)
        actions: list[Action] = []
        imei = None
        for kind, line, _ in framer.feed(data) + framer.flush():
            if kind is OVERSIZE and line:
                actions.append(Rejected("line_too_long", line))
            if kind is not FRAME:
                continue
            try:
                found, events, ack = line_events(line, now)
            except LineError as error:
                actions.append(Rejected(error.reason, line, reply=b"ERR\n"))
                continue
            if imei is None:
                imei = found
                actions.append(Identified(found))
            elif found != imei:
                actions.append(Rejected("imei_mismatch", line))
                continue
            actions.append(Store(events, ack=ack or b"HB\n"))
        return actions

    def encode_command(self, command: Command, now: datetime) -> bytes:
        return encode_command(command)


def stream_codec(listener: Any) -> SemicolonCodec:
    return SemicolonCodec(int(listener.option("max_line_bytes", OPTIONS["max_line_bytes"])))


def datagram_codec(listener: Any) -> SemicolonDatagramCodec:
    return SemicolonDatagramCodec(int(listener.option("max_line_bytes", OPTIONS["max_line_bytes"])))
