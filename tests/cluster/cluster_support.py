"""Two (or more) real instances on one replica-set store: fixtures' helpers for tests/cluster."""

from __future__ import annotations

import subprocess
from typing import Any


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



