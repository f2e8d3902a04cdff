"""The generic driver's codecs: text lines on TCP and UDP, and HTTP requests on the same TCP port.

Each message on a TCP connection is told apart by its first bytes: ``GET ``
or ``POST `` starts an HTTP request, anything else is a line ending in ``\\n``
or ``\\r``. A report line is answered ``OK <n>`` once stored (n = reports from
that line) or ``ERR <reason>``; an HTTP request ``200`` / ``400`` with the same
text. HTTP answers carry ``Connection: close``: the request ends the
connection's input, later bytes are ignored (the client opens a new
connection, as HTTP requires after ``close``).

One TCP connection carries one device (the session registry binds it); a
line naming another device is rejected with ``device_changed``. A UDP
datagram may hold one or more lines, of any devices.

Pure: no Twisted; ``now`` is an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from attrs import evolve, frozen

from waygps.actions import Action, Close, Identified, Rejected, Send, Store, excerpt
from waygps.commands.model import Command, UnsupportedCommand
from waygps.drivers.generic import formats
from waygps.drivers.generic.formats import Record, ReportError
from waygps.drivers.generic.http import CONTINUE, HttpError, Request, RequestReader, looks_like_http, response
from waygps.framing import FRAME, TextFramer

DEFAULT_OPTIONS: Mapping[str, Any] = {
    "max_line_bytes": 4096,
    "speed_unit": "kmh",
    "server_time_window": 60.0,
    "max_http_body_bytes": 65536,
}

MAX_FORM_FIELDS = 200


@frozen
class Settings:
    """A listener's configuration as the codecs use it."""

    max_line_bytes: int = 4096
    max_http_body_bytes: int = 65536
    ack: bool = True
    formats: formats.Settings = formats.Settings()

    @classmethod
    def from_listener(cls, options: Mapping[str, Any], ack: bool = True) -> "Settings":
        """Checked settings; raises ``ValueError`` naming the bad option."""
        values = {**DEFAULT_OPTIONS, **options}
        unit = values["speed_unit"]
        if unit not in formats.SPEED_UNITS:
            raise ValueError(f"speed_unit: expected one of {', '.join(formats.SPEED_UNITS)}, got {unit!r}")
        for name in ("max_line_bytes", "max_http_body_bytes"):
            if not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] < 16:
                raise ValueError(f"{name}: expected an integer of at least 16, got {values[name]!r}")
        window = values["server_time_window"]
        if not isinstance(window, (int, float)) or isinstance(window, bool) or window < 0:
            raise ValueError(f"server_time_window: expected seconds (0 or more), got {window!r}")
        return cls(max_line_bytes=values["max_line_bytes"], max_http_body_bytes=values["max_http_body_bytes"],
                   ack=ack, formats=formats.Settings(speed_unit=unit, server_time_window=float(window)))


def _line_reply(settings: Settings, text: str) -> bytes:
    return f"{text}\n".encode() if settings.ack else b""


def line_actions(line: bytes, now: datetime, settings: Settings, device: str | None = None) -> list[Action]:
    """Actions for one report line; ``device`` = the connection's device so far, if any."""
    try:
        text = line.decode("utf-8", "replace")
        found, positions = formats.to_positions(formats.parse_line(text), now, settings.formats)
        if device is not None and found != device:
            raise ReportError("device_changed")
    except ReportError as error:
        return [Rejected(error.reason, excerpt(line), _line_reply(settings, f"ERR {error.reason}"), raw=line)]
    return [
        Identified(found, reject=_line_reply(settings, "ERR unknown_device")),
        Store(positions, ack=_line_reply(settings, f"OK {len(positions)}"),
              nack=_line_reply(settings, "ERR store_failed")),
    ]


def split_lines(data: bytes) -> list[bytes]:
    """Non-blank lines, split at ``\\n`` or ``\\r``."""
    return [line for line in data.replace(b"\r", b"\n").split(b"\n") if line.strip()]


def cuts_engine(command: Command) -> bool:
    """Generic devices (phone apps, scripts, simple trackers) have no known output command: only a
    ``block`` would cut an engine, and they are never sent one."""
    return command.type == "block"


def encode_text_command(command: Command) -> bytes:
    """Only ``custom`` has a meaning for devices without a protocol: its text, as one line."""
    if command.type != "custom":
        raise UnsupportedCommand(f"generic devices take only custom commands, not {command.type}")
    text = str(command.params.get("text", ""))
    if not text or "\n" in text or "\r" in text:
        raise UnsupportedCommand("a custom command for a generic device is one non-empty line of text")
    return text.encode("utf-8") + b"\n"


class GenericStreamCodec:
    """One TCP connection: report lines, or one HTTP request.

    ``capture=True`` reads a capture offline (``waygps decode``): lines of any
    devices, one HTTP request after another, and a last line without its end.
    """

    def __init__(self, settings: Settings, capture: bool = False) -> None:
        self.settings = settings
        self.capture = capture
        self.device: str | None = None
        self.mode = "lines"  # "lines" | "http" | "done" (after an HTTP request)
        # lines end at CRLF, LF or CR; blank lines are skipped; a line over the limit is dropped to its end
        self._framer = TextFramer(end=(b"\r\n", b"\n", b"\r"), max_length=settings.max_line_bytes, strip=b"",
                                  blank=b" \t\r\n\x0b\x0c")
        self._stored = False  # a Store was returned: its acknowledgement may still be pending
        self._reader: RequestReader | None = None
        self._extra_counted = False

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        if self.mode == "done":
            return self._after_http(data)
        self._framer.push(data)
        actions: list[Action] = []
        while True:
            self._lines(actions, now)
            if self.mode != "http":
                break
            actions.extend(self._http(now))
            if self.mode != "lines":
                break
        return actions

    def flush(self, now: datetime) -> list[Action]:
        """The end of a capture: a last line without its line end is read too."""
        if self.mode == "lines" and self._framer.peek(self._framer.buffered).strip() and not self._framer.skipping:
            return self.receive(b"\n", now)
        if self.mode == "http":
            return [Rejected("incomplete_http", excerpt(self._reader.request_start if self._reader else b""))]
        return []

    def encode_command(self, command: Command, now: datetime) -> bytes:
        if self.mode != "lines":
            raise UnsupportedCommand("an HTTP client cannot be sent commands")
        return encode_text_command(command)

    def cuts_engine(self, command: Command) -> bool:
        return cuts_engine(command)

    # --- lines -------------------------------------------------------------------
    def _lines(self, actions: list[Action], now: datetime) -> None:
        framer = self._framer
        peek, pop = framer.peek, framer.pop
        while self.mode == "lines":
            if not framer.skipping:
                # Each message's first bytes tell an HTTP request from a report line.
                head = peek(8)
                if not head:
                    return
                http = looks_like_http(head)
                if http is None and b"\n" not in head and b"\r" not in head:
                    return
                if http:
                    self.mode = "http"
                    self._reader = RequestReader(self.settings.max_http_body_bytes)
                    return
            piece = pop()
            if piece is None:
                return
            if piece.kind is FRAME:
                actions.extend(self._line(piece.data, now))
            elif piece.data:  # OVERSIZE; the rest of the same line comes with an empty excerpt
                actions.append(self._too_long(piece.data))

    def _too_long(self, start: bytes) -> Rejected:
        return Rejected("line_too_long", excerpt(start), _line_reply(self.settings, "ERR line_too_long"), raw=start)

    def _line(self, line: bytes, now: datetime) -> list[Action]:
        actions = line_actions(line, now, self.settings, None if self.capture else self.device)
        for action in actions:
            if isinstance(action, Identified):
                self.device = action.imei
            elif isinstance(action, Store):
                self._stored = True
        return actions

    # --- HTTP --------------------------------------------------------------------
    def _http(self, now: datetime) -> list[Action]:
        assert self._reader is not None
        data = self._framer.take_rest()
        actions: list[Action] = []
        try:
            request = self._reader.feed(data)
        except HttpError as error:
            self.mode = "done"
            start = self._reader.request_start
            self._reader = None  # a rejected request may have buffered a whole read: let it go now
            return self._http_rejected(error.status, error.reason, start)
        if self._reader.continue_due:
            self._reader.continue_due = False
            actions.append(Send(CONTINUE))
        if request is None:
            return actions
        actions.extend(self.http_request(request, now))
        if self.capture:
            self.mode, self.device = "lines", None
            self._framer.push(self._reader.trailing)
        else:
            self.mode = "done"
            actions.extend(self._after_http(self._reader.trailing))
            self._reader.trailing = b""  # counted and ignored: not kept while the acknowledgement waits
        return actions

    def http_request(self, request: Request, now: datetime) -> list[Action]:
        line = request.request_line.encode("latin-1")
        try:
            records = request_records(request)
            found, positions = formats.to_positions(records, now, self.settings.formats)
            if self.device is not None and found != self.device and not self.capture:
                raise ReportError("device_changed")
        except ReportError as error:
            return self._http_rejected(400, error.reason, line)
        self.device = found
        self._stored = True
        text = f"OK {len(positions)}\n"
        return [
            Identified(found, reject=response(403, "ERR unknown_device\n")),
            Store(positions, ack=response(200, text), nack=response(503, "ERR store_failed\n")),
        ]

    def _http_rejected(self, status: int, reason: str, start: bytes) -> list[Action]:
        extra = (("Allow", "GET, POST"),) if status == 405 else ()
        actions: list[Action] = [Rejected(reason, excerpt(start), response(status, f"ERR {reason}\n", extra), raw=start)]
        if not self._stored and not self.capture:
            # Nothing is waiting for its acknowledgement: the answer is written, close now.
            actions.append(Close(f"http request rejected: {reason}"))
        return actions

    def _after_http(self, data: bytes) -> list[Action]:
        if not data.strip() or self._extra_counted:
            return []
        self._extra_counted = True
        return [Rejected("http_pipelined", excerpt(data), raw=data)]


def request_records(request: Request) -> list[Record]:
    """The reports of an HTTP request: query fields, plus a form, JSON or text-line body."""
    target = urlsplit(request.target)
    query = _form(target.query)
    body = request.body
    if not body.strip():
        return [Record(query, raw=request.target, format="http_query")]
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    stripped = text.strip()
    if "json" in content_type or stripped[:1] in ("{", "["):
        records = formats.records_from_json(formats.load_json(stripped), stripped)
        format = "http_json"
    elif content_type == "application/x-www-form-urlencoded":
        records = [Record(_form(stripped), raw=stripped, format="http_form")]
        format = "http_form"
    else:
        records = [record for line in split_lines(body)
                   for record in formats.parse_line(line.decode("utf-8", "replace"))]
        format = None
    if not records:
        raise ReportError("empty")
    return [evolve(record, pairs=(*query, *record.pairs), format=format or record.format)
            for record in records]


def _form(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise ReportError("too_many_fields") from None


class GenericDatagramCodec:
    """A UDP listener: each datagram holds one or more report lines."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def receive_datagram(self, data: bytes, now: datetime) -> list[Action]:
        if len(data) > self.settings.max_line_bytes:
            return [Rejected("line_too_long", excerpt(data), _line_reply(self.settings, "ERR line_too_long"), raw=data)]
        lines = split_lines(data)
        if not lines:
            return [Rejected("empty", excerpt(data), raw=data)]
        actions: list[Action] = []
        for line in lines:
            actions.extend(line_actions(line, now, self.settings))
        return actions

    def encode_command(self, command: Command, now: datetime) -> bytes:
        return encode_text_command(command)

    def cuts_engine(self, command: Command) -> bool:
        return cuts_engine(command)


__all__ = [
    "DEFAULT_OPTIONS", "GenericDatagramCodec", "GenericStreamCodec", "Settings", "encode_text_command",
    "line_actions", "request_records", "split_lines",
]
