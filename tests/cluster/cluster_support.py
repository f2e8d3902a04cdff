"""Two (or more) real instances on one replica-set store: fixtures' helpers for tests/cluster."""

from __future__ import annotations

import subprocess
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.protocols.portforward import ProxyFactory, ProxyServer

from tests.conftest import RunningServer, StoreProcess, server_config

TOKEN = "cluster-secret"
FAST_CLUSTER = {"heartbeat_interval": 0.5, "lease_seconds": 2.0}
FAST_COMMANDS = {"poll_interval": 0.2, "ack_timeout": 5.0, "max_attempts": 2}


class ReplicaStore(StoreProcess):
    """secantusd-py as a one-node replica set (no ``--standalone``): it serves change streams."""

    def __init__(self, start: bool = True) -> None:
        super().__init__(start=start, prefix="waygps-rs-")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.command, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", str(self.dir / "data"),
             "--log-level", "WARNING", "--cache-size", "128M"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def restart(self) -> None:
        """A clean stop (SIGTERM) and a start on the same port and data (blocking).

        A SIGKILLed SecantusDB may lose its last unsynced oplog entries unless it runs with
        ``--sync-on-commit`` (docs/scaling.md); a clean restart keeps them.
        """
        assert self.process is not None
        self.process.terminate()
        self.process.wait(30)
        self.start()
        self.wait()


def instance_config(uri: str, db_name: str, instance: str, listeners: Any = ({"driver": "gv50"},),
                    **sections: Any) -> Any:
    sections.setdefault("cluster", FAST_CLUSTER)
    commands = dict(sections.pop("commands", FAST_COMMANDS))
    commands["instance_id"] = instance
    sections.setdefault("websocket", {"tokens": [{"token": TOKEN, "devices": "*"}]})
    return server_config(uri, db_name, listeners, commands=commands, **sections)


class Instance(RunningServer):
    @property
    def instance_id(self) -> str:
        return self.service.instance_id



class _Relayed(ProxyServer):
    def connectionMade(self) -> None:
        self.factory.live.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.live.discard(self)
        super().connectionLost(reason)


class StoreRelay:
    """A TCP relay in front of a store (as in tests/drivers/gv50, whose module cannot be imported from
    here): ``cut()`` makes the store unreachable for whoever uses ``uri``, ``restore()`` undoes it."""

    def __init__(self, uri: str) -> None:
        host, port = uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.factory = ProxyFactory(host, int(port))
        self.factory.protocol = _Relayed
        self.factory.live = set()
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def uri(self) -> str:
        # directConnection: pymongo would otherwise go to the member the replica set advertises.
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def cut(self) -> Deferred:
        for relayed in list(self.factory.live):
            relayed.transport.abortConnection()
        return self.listening.stopListening()

    def restore(self) -> None:
        self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")
