"""``waygps.reactor``: Twisted's epoll reactor less the per-event legacy log context.

Unit tests drive one un-installed reactor by hand (``doPoll``) over real socket
pairs. ``tests/foundation/test_twistd_run.py`` runs ``twistd --reactor waygps
waygps`` for real.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.python import context, log as legacy_log

from waygps.reactor import WayGPSReactor

BIN = Path(sys.executable).parent


class _Reader(FileDescriptor):
    """Reads what its socket holds; ``on_read`` runs inside ``doRead``."""

    def __init__(self, reactor: Any, sock: socket.socket, on_read: Any = None) -> None:
        super().__init__(reactor)
        self.sock = sock
        self.sock.setblocking(False)
        self.data = b""
        self.systems: list[Any] = []
        self.lost: list[Any] = []
        self.on_read = on_read

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "the-reader"

    def doRead(self) -> Any:
        self.systems.append(context.get(legacy_log.ILogContext, {}).get("system"))
        self.data += self.sock.recv(4096)
        if self.on_read is not None:
            return self.on_read(self)
        return None

    def connectionLost(self, reason: Any) -> None:
        self.lost.append(reason)


@pytest.fixture
def reactor() -> Iterator[WayGPSReactor]:
    built = WayGPSReactor()
    yield built
    built.waker.connectionLost(None)
    built._poller.close()  # (drops every registration: the test's sockets may be closed already)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def _pair(pairs: list) -> tuple[socket.socket, socket.socket]:
    pair = socket.socketpair()
    pairs.append(pair)
    return pair


def test_a_ready_descriptor_is_read_without_the_legacy_context(reactor: WayGPSReactor, pairs: list) -> None:
    ours, theirs = _pair(pairs)
    reader = _Reader(reactor, ours)
    reactor.addReader(reader)
    reactor.doPoll(0)
    assert reader.data == b""  # nothing ready: not called
    theirs.sendall(b"+RESP:GTHBD$")
    reactor.doPoll(1)
    assert reader.data == b"+RESP:GTHBD$"
    # Twisted's own epoll reactor would have pushed {"system": "the-reader"} around the call.
    assert reader.systems == ["-"]


def test_a_connection_that_raises_is_closed_and_the_others_still_read(reactor: WayGPSReactor, pairs: list) -> None:
    errors: list[dict] = []
    legacy_log.addObserver(errors.append)
    try:
        def boom(_: Any) -> None:
            raise ValueError("a protocol bug")

        bad_ours, bad_theirs = _pair(pairs)
        good_ours, good_theirs = _pair(pairs)
        bad = _Reader(reactor, bad_ours, on_read=boom)
        good = _Reader(reactor, good_ours)
        reactor.addReader(bad)
        reactor.addReader(good)
        bad_theirs.sendall(b"x")
        good_theirs.sendall(b"y")
        reactor.doPoll(1)
    finally:
        legacy_log.removeObserver(errors.append)
    assert good.data == b"y" and not good.lost
    assert len(bad.lost) == 1 and bad.lost[0].check(ValueError)
    assert bad not in reactor.getReaders() and good in reactor.getReaders()
    assert any(e.get("isError") and "a protocol bug" in str(e.get("failure", "")) for e in errors)


def test_a_descriptor_removed_by_an_earlier_event_of_the_same_poll_is_skipped(
        reactor: WayGPSReactor, pairs: list) -> None:
    first_ours, first_theirs = _pair(pairs)
    second_ours, second_theirs = _pair(pairs)
    readers: list[_Reader] = []

    def drop_the_other(me: _Reader) -> None:
        other = readers[1] if me is readers[0] else readers[0]
        reactor.removeReader(other)

    readers.append(_Reader(reactor, first_ours, on_read=drop_the_other))
    readers.append(_Reader(reactor, second_ours, on_read=drop_the_other))
    for reader in readers:
        reactor.addReader(reader)
    first_theirs.sendall(b"1")
    second_theirs.sendall(b"2")
    logged: list[dict] = []
    legacy_log.addObserver(logged.append)
    try:
        reactor.doPoll(1)
    finally:
        legacy_log.removeObserver(logged.append)
    # Both were ready in one poll; whichever ran first removed the other, which was not called.
    assert sorted(len(r.data) for r in readers) == [0, 1]
    assert not any(r.lost for r in readers)
    assert not [e for e in logged if e.get("isError") or e.get("log_failure")]


def test_a_closed_peer_ends_the_connection(reactor: WayGPSReactor, pairs: list) -> None:
    class _Ends(_Reader):
        def doRead(self) -> Any:
            from twisted.internet import main

            data = self.sock.recv(4096)
            self.data += data
            return None if data else main.CONNECTION_DONE

    ours, theirs = _pair(pairs)
    reader = _Ends(reactor, ours)
    reactor.addReader(reader)
    theirs.sendall(b"last words")
    theirs.shutdown(socket.SHUT_WR)
    for _ in range(3):
        reactor.doPoll(0.5)
    assert reader.data == b"last words"
    assert len(reader.lost) == 1 and reader.lost[0].type.__name__ == "ConnectionDone"
    assert reader not in reactor.getReaders()


def test_twistd_lists_the_reactor() -> None:
    result = subprocess.run([str(BIN / "twistd"), "--help-reactors"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert any(line.split()[:1] == ["waygps"] for line in result.stdout.splitlines())
