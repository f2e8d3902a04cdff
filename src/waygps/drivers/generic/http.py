"""A small sans-IO HTTP/1.1 request reader and response writer, for OsmAnd-style reports.

Enough HTTP for tracking apps and scripts: one ``GET`` or ``POST`` with a
``Content-Length`` or chunked body, every size bounded. No Twisted, no I/O:
bytes in, a :class:`Request` (or an :class:`HttpError`) out.
"""

from __future__ import annotations

import re
from typing import Sequence

from attrs import frozen

MAX_HEAD = 8192
MAX_HEADERS = 64
MAX_CHUNK_LINE = 256
METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")

STATUS_TEXT = {
    100: "Continue", 200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
    413: "Content Too Large", 431: "Request Header Fields Too Large", 501: "Not Implemented",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """The request cannot be read: answer ``status`` and give up on the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@frozen
class Request:
    method: str
    target: str
    version: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target} {self.version}"


def looks_like_http(data: bytes) -> bool | None:
    """True: starts with ``METHOD SP``; False: cannot; None: too short to tell."""
    for method in METHODS:
        start = method + b" "
        if data.startswith(start):
            return True
        if len(data) < len(start) and start.startswith(data):
            return None
    return False


class RequestReader:
    """Feed bytes until :meth:`feed` returns the request; raises :class:`HttpError`.

    ``continue_due`` turns true once when the client waits for ``100 Continue``.
    """

    def __init__(self, max_body: int, methods: Sequence[str] = ("GET", "POST")) -> None:
        self.max_body = max_body
        self.methods = tuple(methods)
        self.continue_due = False
        self.trailing = b""
        self._buffer = bytearray()
        self._head: tuple[str, str, str, list[tuple[str, str]]] | None = None
        self._length: int | None = None
        self._chunked = False
        self._body = bytearray()
        self._chunk_left: int | None = None  # chunked: bytes left in the current chunk, None = read a size
        self._in_trailers = False
        self.request_start = b""

    def feed(self, data: bytes) -> Request | None:
        if not self.request_start:
            self.request_start = bytes(data[:48])
        self._buffer += data
        if self._head is None:
            end = _END_OF_HEAD.search(self._buffer)
            if end is None:
                if len(self._buffer) > MAX_HEAD:
                    raise HttpError(431, "headers_too_large")
                return None
            if end.start() > MAX_HEAD:
                raise HttpError(431, "headers_too_large")
            head = bytes(self._buffer[:end.start()])
            del self._buffer[:end.end()]
            self._head = self._parse_head(head)
        if self._chunked:
            done = self._read_chunks()
        else:
            assert self._length is not None
            take = self._length - len(self._body)
            self._body += self._buffer[:take]
            del self._buffer[:take]
            done = len(self._body) == self._length
        if not done:
            return None
        self.trailing = bytes(self._buffer)
        self._buffer.clear()
        method, target, version, headers = self._head
        return Request(method, target, version, tuple(headers), bytes(self._body))

    def _parse_head(self, head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
        lines = _LINE_END.split(head)
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
            raise HttpError(400, "bad_request_line")
        method, target, version = (p.decode("latin-1") for p in parts)
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(505, "http_version")
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in target):
            raise HttpError(400, "bad_request_line")
        if len(lines) - 1 > MAX_HEADERS:
            raise HttpError(431, "headers_too_large")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise HttpError(400, "bad_header")
            headers.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
        if method not in self.methods:
            raise HttpError(405, "method_not_allowed")
        self._framing(headers)
        expect = [v.lower() for k, v in headers if k == "expect"]
        if "100-continue" in expect and version == "HTTP/1.1" and (self._chunked or self._length):
            self.continue_due = True
        return method, target, version, headers

    def _framing(self, headers: list[tuple[str, str]]) -> None:
        lengths = {v.strip() for k, v in headers if k == "content-length"}
        codings = [c.strip().lower() for k, v in headers if k == "transfer-encoding" for c in v.split(",")]
        if codings:
            if lengths:
                raise HttpError(400, "bad_framing")
            if codings != ["chunked"]:
                raise HttpError(501, "unsupported_transfer_encoding")
            self._chunked = True
            return
        if len(lengths) > 1:
            raise HttpError(400, "bad_framing")
        length = lengths.pop() if lengths else "0"
        if not length.isdigit() or not length.isascii() or len(length) > 12:
            raise HttpError(400, "bad_framing")
        self._length = int(length)
        if self._length > self.max_body:
            raise HttpError(413, "body_too_large")

    def _read_chunks(self) -> bool:
        while True:
            if self._in_trailers:
                end = _LINE_END.search(self._buffer)
                if end is None:
                    if len(self._buffer) > MAX_CHUNK_LINE:
                        raise HttpError(400, "bad_chunk")
                    return False
                line = self._buffer[:end.start()]
                del self._buffer[:end.end()]
                if not line:
                    return True
                continue
            if self._chunk_left is None:
                end = _LINE_END.search(self._buffer)
                if end is None:
                    if len(self._buffer) > MAX_CHUNK_LINE:
                        raise HttpError(400, "bad_chunk")
                    return False
                size = bytes(self._buffer[:end.start()]).split(b";")[0].strip()
                del self._buffer[:end.end()]
                if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size):
                    raise HttpError(400, "bad_chunk")
                left = int(size, 16)
                if left == 0:
                    self._in_trailers = True
                    continue
                if len(self._body) + left > self.max_body:
                    raise HttpError(413, "body_too_large")
                self._chunk_left = left
            if self._chunk_left > 0:
                taken = self._buffer[:self._chunk_left]
                self._body += taken
                del self._buffer[:len(taken)]
                self._chunk_left -= len(taken)
                if self._chunk_left > 0:
                    return False
            if len(self._buffer) < 2 and not self._buffer.startswith(b"\n"):
                return False
            if self._buffer.startswith(b"\r\n"):
                del self._buffer[:2]
            elif self._buffer.startswith(b"\n"):
                del self._buffer[:1]
            else:
                raise HttpError(400, "bad_chunk")
            self._chunk_left = None


def response(status: int, text: str, extra_headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A complete ``text/plain`` response that closes the connection."""
    body = text.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Error')}",
             "Content-Type: text/plain; charset=utf-8",
             f"Content-Length: {len(body)}",
             "Connection: close",
             *(f"{name}: {value}" for name, value in extra_headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
