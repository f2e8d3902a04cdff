"""WebSocket clients for the feed tests: an Autobahn client, and a raw socket that speaks the handshake itself."""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

TIMEOUT = 30.0


class Client(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onPing(self, payload: bytes) -> None:
        self.factory.pings += 1
        super().onPing(payload)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.put(json.loads(payload))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed: {code} {reason}"))
        self.factory.closed.callback((code, reason))


def connect(port: int, query: str = "", headers: dict | None = None, compress: bool = False,
            path: str = "/ws/gps/") -> WebSocketClientFactory:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}{path}{query}", headers=headers or {})
    factory.protocol = Client
    factory.opened = Deferred()
    factory.closed = Deferred()
    factory.messages = DeferredQueue()
    factory.pings = 0
    if compress:
        from autobahn.websocket.compress import (
            PerMessageDeflateOffer, PerMessageDeflateResponse, PerMessageDeflateResponseAccept,
        )

        def accept(response: Any) -> Any:
            if isinstance(response, PerMessageDeflateResponse):
                return PerMessageDeflateResponseAccept(response)
            return None

        factory.setProtocolOptions(perMessageCompressionOffers=[PerMessageDeflateOffer()],
                                   perMessageCompressionAccept=accept)
    connectWS(factory)
    return factory


def get(queue: DeferredQueue, timeout: float = TIMEOUT) -> Deferred:
    d = queue.get()
    d.addTimeout(timeout, reactor)
    return d


def frame(opcode: int, payload: bytes, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` may claim more than ``payload`` holds."""
    size = len(payload) if length is None else length
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient(Protocol):
    """Speaks the opening handshake by hand; reads what the server writes, unmasked frames."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write((f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                              f"Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    @property
    def status(self) -> int | None:
        if b"\r\n" not in self.data:
            return None
        return int(self.data.split(b"\r\n", 1)[0].split()[1])

    def frames(self) -> list[tuple[int, bytes]]:
        """(opcode, payload) of the complete frames after the handshake answer."""
        return server_frames(self.data)

    def close_code(self) -> int | None:
        return close_code(self.data)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the complete unmasked frames after an HTTP handshake answer."""
    rest = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    out = []
    while len(rest) >= 2:
        opcode, size = rest[0] & 0x0F, rest[1] & 0x7F
        offset = 2
        if size == 126:
            size, offset = struct.unpack(">H", rest[2:4])[0], 4
        elif size == 127:
            size, offset = struct.unpack(">Q", rest[2:10])[0], 10
        if len(rest) < offset + size:
            break
        out.append((opcode, rest[offset:offset + size]))
        rest = rest[offset + size:]
    return out


def close_code(data: bytes) -> int | None:
    for opcode, payload in server_frames(data):
        if opcode == 0x8 and len(payload) >= 2:
            return struct.unpack(">H", payload[:2])[0]
    return None


def messages(data: bytes) -> list[dict]:
    return [json.loads(payload) for opcode, payload in server_frames(data) if opcode == 0x1]


def raw_connect(port: int, path: str) -> Deferred:
    client = RawClient(path)
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)


def wait_until(check: Any, what: str, timeout: float = TIMEOUT) -> Deferred:
    """Fires once ``check()`` is true (polled on the reactor), or fails after ``timeout`` seconds."""
    from twisted.internet.defer import inlineCallbacks

    @inlineCallbacks
    def poll() -> Any:
        for _ in range(int(timeout / 0.02)):
            if check():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"timed out waiting for {what}")

    return poll()
