"""``write_now`` on real TCP sockets: sent in the call when the connection is idle, queued behind
anything Twisted already holds, and plain ``transport.write`` everywhere else."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport

from waygps.drivers.immediate import write_now


class _Server(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.made.callback(self)


class _Peer(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(None)


async def _pair() -> tuple[Any, _Peer, Any]:
    """(the server side's transport, the client protocol, the listening port)."""
    factory = protocol.ServerFactory()
    factory.protocol = _Server
    factory.made = defer.Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    peer = _Peer()
    await protocol.ClientCreator(reactor, lambda: peer).connectTCP("127.0.0.1", port.getHost().port)
    server = await factory.made
    return server.transport, peer, port


async def _until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")


async def _close(transport: Any, peer: _Peer, port: Any) -> None:
    transport.loseConnection()
    await peer.closed
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_sends_in_the_call_without_registering_a_writer() -> None:
    transport, peer, port = await _pair()
    write_now(transport, b"+SACK:0001$")
    assert transport not in reactor.getWriters()  # Twisted's write would have registered it
    assert not transport.dataBuffer and not transport._tempDataLen
    await _until(lambda: peer.received == b"+SACK:0001$")
    await _close(transport, peer, port)


@pytest_twisted.ensureDeferred
async def test_bytes_already_queued_go_first() -> None:
    transport, peer, port = await _pair()
    transport.write(b"first,")  # queued by Twisted, not sent yet
    write_now(transport, b"second")
    assert transport in reactor.getWriters()
    await _until(lambda: len(peer.received) >= 12)
    assert peer.received == b"first,second"
    await _close(transport, peer, port)


@pytest_twisted.ensureDeferred
async def test_what_the_socket_cannot_take_is_queued_and_later_writes_stay_behind_it() -> None:
    transport, peer, port = await _pair()
    peer.transport.pauseProducing()  # the peer stops reading: the socket buffers fill up
    big = bytes(range(256)) * 65536  # 16 MiB: more than any socket buffer here
    write_now(transport, big)
    assert transport.dataBuffer or transport._tempDataLen  # the rest waits in Twisted's buffer
    write_now(transport, b"tail")
    peer.transport.resumeProducing()
    await _until(lambda: len(peer.received) >= len(big) + 4, seconds=30)
    assert peer.received == big + b"tail"
    await _close(transport, peer, port)


@pytest_twisted.ensureDeferred
async def test_a_closing_connection_writes_as_twisted_does_then_closes() -> None:
    transport, peer, port = await _pair()
    transport.loseConnection()
    write_now(transport, b"bye")
    await peer.closed
    assert peer.received == b"bye"
    await port.stopListening()


def test_other_transports_get_a_plain_write() -> None:
    transport = StringTransport()
    write_now(transport, b"+SACK:0002$")
    write_now(transport, b"+SACK:0003$")
    assert transport.value() == b"+SACK:0002$+SACK:0003$"
