"""A TCP relay in front of a store, to cut it off and bring it back while a test runs."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.protocols.portforward import ProxyFactory, ProxyServer


class _Relayed(ProxyServer):
    def connectionMade(self) -> None:
        self.factory.live.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.live.discard(self)
        super().connectionLost(reason)


class StoreRelay:
    """``uri`` reaches the store through the relay; ``cut()`` makes it unreachable (open connections
    aborted, no new ones accepted), ``restore()`` undoes it on the same port."""

    def __init__(self, uri: str) -> None:
        host, port = uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.factory = ProxyFactory(host, int(port))
        self.factory.protocol = _Relayed
        self.factory.live = set()
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def uri(self) -> str:
        # directConnection: with a replica set pymongo would otherwise go to the member it advertises.
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def cut(self) -> Deferred:
        for relayed in list(self.factory.live):
            relayed.transport.abortConnection()
        return self.listening.stopListening()

    def restore(self) -> None:
        self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")
