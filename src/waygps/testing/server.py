"""A real WayGPS service for end-to-end tests, and device-side clients that talk to it.

``start_waygps`` runs ``WayGPSService`` in the test's reactor (pytest-twisted)
with the given listeners; ``RunningServer`` exposes its parts, opens TCP
connections and sends datagrams to its listeners, and reads back what the
store holds. Every wait has a generous timeout and fails with what it saw.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol

WAIT = 30.0  # seconds: a shared, loaded machine is slow, never this slow


def _sleep(seconds: float) -> Deferred:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


class DeviceConnection(Protocol):
    """One TCP connection as a device sees it: ``send`` bytes, ``read_until`` what the server wrote."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()
        self.lost = False
        self._waiters: list[tuple[Any, Deferred]] = []

    def connectionMade(self) -> None:
        self.factory.connected.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True
        self._check()
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> Deferred:
        if not self.lost:
            self.transport.loseConnection()
        return self.closed

    def read_until(self, expected: bytes | int, timeout: float = WAIT) -> Deferred:
        """Fires with everything received so far once it holds ``expected`` (bytes) or that many bytes."""
        d: Deferred = Deferred()
        self._waiters.append((expected, d))
        from twisted.internet import reactor

        def expire() -> None:
            if not d.called:
                self._waiters.remove((expected, d))
                d.errback(TimeoutError(f"waited {timeout}s for {expected!r}; received {self.received!r}"))

        call = reactor.callLater(timeout, expire)
        d.addBoth(lambda result: (call.active() and call.cancel(), result)[1])
        self._check()
        return d

    def _check(self) -> None:
        for expected, d in list(self._waiters):
            done = (expected in self.received) if isinstance(expected, bytes) else len(self.received) >= expected
            if done or self.lost:
                self._waiters.remove((expected, d))
                if done:
                    d.callback(self.received)
                else:
                    d.errback(ConnectionError(f"connection closed; received {self.received!r}"))


class _DatagramClient(DatagramProtocol):
    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.waiting: Deferred | None = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.replies.append(data)
        if self.waiting is not None and not self.waiting.called:
            self.waiting.callback(data)


class RunningServer:
    """What a test sees of a started WayGPS service."""

    def __init__(self, service: Any, db_name: str, mongo_uri: str) -> None:
        self.service = service
        self.db_name = db_name
        self.mongo_uri = mongo_uri
        self.config = service.config
        self.store = service.store
        self.persistence = service.persistence
        self.sessions = service.sessions
        self.commands = service.commands
        self.bus = service.bus

    @property
    def db(self) -> Any:
        return self.store.db

    def port(self, index: int = 0) -> int:
        return self.service.listeners[index].bound_port

    @property
    def web_port(self) -> int:
        return self.service.web.bound_port

    def sync_db(self) -> Any:
        """A pymongo (blocking) handle on the test database, for assertions."""
        import pymongo

        client = pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=5000)
        return client[self.db_name]

    def stop(self) -> Deferred:
        return self.service.stopService()

    # --- talking to it as a device ---------------------------------------------
    @inlineCallbacks
    def connect(self, index: int = 0) -> Any:
        """A ``DeviceConnection`` to TCP listener ``index``."""
        from twisted.internet import reactor

        factory = ClientFactory()
        factory.protocol = DeviceConnection
        factory.connected = Deferred()
        connector = reactor.connectTCP("127.0.0.1", self.port(index), factory, timeout=WAIT)
        factory.clientConnectionFailed = lambda _c, reason: factory.connected.errback(reason)
        connection = yield factory.connected
        connection.connector = connector
        return connection

    @inlineCallbacks
    def exchange(self, data: bytes, until: bytes | int, index: int = 0) -> Any:
        """Connect, send ``data``, read until ``until`` arrived, close; returns what the server wrote."""
        connection = yield self.connect(index)
        connection.send(data)
        try:
            received = yield connection.read_until(until)
        finally:
            yield connection.close()
        return received

    @inlineCallbacks
    def datagram(self, data: bytes, index: int = 0, reply: bool = True, timeout: float = WAIT) -> Any:
        """Send one datagram to UDP listener ``index``; with ``reply``, wait for the first answer."""
        from twisted.internet import reactor

        client = _DatagramClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        try:
            if reply:
                client.waiting = Deferred()
                client.waiting.addTimeout(timeout, reactor)
            port.write(data, ("127.0.0.1", self.port(index)))
            answer = (yield client.waiting) if reply else None
        finally:
            yield port.stopListening()
        return answer

    # --- reading the store -----------------------------------------------------
    @inlineCallbacks
    def documents(self, collection: str = "DadosVeiculo", query: dict | None = None, count: int = 1,
                  timeout: float = WAIT) -> Any:
        """Waits until ``collection`` holds at least ``count`` documents matching ``query`` and returns
        them (sorted by ``dataDevice`` then ``_id``); raises ``TimeoutError`` with what it found."""
        from twisted.internet import reactor

        deadline = reactor.seconds() + timeout
        while True:
            found = yield self.db[collection].find(query or {})
            if len(found) >= count:
                return sorted(found, key=lambda doc: (str(doc.get("dataDevice")), str(doc["_id"])))
            if reactor.seconds() > deadline:
                raise TimeoutError(f"{collection}: {len(found)} of {count} documents after {timeout}s: {found!r}")
            yield _sleep(0.05)

    def positions(self, imei: str | None = None, count: int = 1, timeout: float = WAIT) -> Deferred:
        """The stored ``DadosVeiculo`` documents (of ``imei``), once there are ``count``."""
        return self.documents("DadosVeiculo", {"IMEI": imei} if imei else None, count, timeout)


def server_config(mongo_uri: str, db_name: str, listeners: Any = (), **sections: Any) -> Any:
    """A checked ``Config`` for tests: loopback listeners on free ports, this store, the web on a free port."""
    from waygps.config import build
    from waygps.drivers import find_drivers

    raw: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in sections.items()}
    mongodb = dict(raw.get("mongodb", {}))
    mongodb.setdefault("uri", mongo_uri)
    mongodb.setdefault("database", db_name)
    raw["mongodb"] = mongodb
    raw["listener"] = [{"host": "127.0.0.1", "port": 0, **listener} for listener in listeners]
    websocket = dict(raw.get("websocket", {}))
    websocket.setdefault("port", 0)
    websocket.setdefault("host", "127.0.0.1")
    raw["websocket"] = websocket
    return build(raw, find_drivers())


@inlineCallbacks
def start_waygps(mongo_uri: str, db_name: str, listeners: Any = (), **sections: Any) -> Any:
    """Start the real service; fires with its ``RunningServer`` once it listens (stop it yourself)."""
    from twisted.internet import reactor

    from waygps.drivers import find_drivers
    from waygps.service import WayGPSService

    config = server_config(mongo_uri, db_name, listeners, **sections)
    service = WayGPSService(config, find_drivers(), reactor)
    service.startService()
    yield service.started
    return RunningServer(service, db_name, mongo_uri)


__all__ = ["DeviceConnection", "RunningServer", "WAIT", "server_config", "start_waygps"]
