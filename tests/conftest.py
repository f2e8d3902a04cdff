"""Shared fixtures: the embedded store once per session, and the real service on free ports.

``WAYGPS_TEST_MONGODB_URI`` runs the same integration tests against an
existing MongoDB instead of the embedded SecantusDB.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, inlineCallbacks

from waygps.store.embedded import find_command

STORE_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StoreProcess:
    """A secantusd-py child started with subprocess (not the reactor): for the test session, or for
    one test that kills (SIGKILL) and restarts it on the same port and data."""

    def __init__(self, start: bool = True, prefix: str = "waygps-store-") -> None:
        command = find_command("secantusd-py")
        if command is None:
            pytest.exit("secantusd-py not found: install the test extra (make test does)", returncode=3)
        self.command = command
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.log = open(self.dir / "secantusd.log", "ab")
        self.process: subprocess.Popen | None = None
        if start:
            self.start()
            self.wait()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.command, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", str(self.dir / "data"),
             "--standalone", "--log-level", "WARNING", "--cache-size", "256M"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = STORE_START_TIMEOUT) -> None:
        import pymongo

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"secantusd-py exited: {(self.dir / 'secantusd.log').read_text()[-2000:]}")
            try:
                client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300)
                client.admin.command("ping")
                client.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    close = stop


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    external = os.environ.get("WAYGPS_TEST_MONGODB_URI")
    if external:
        yield external
        return
    store = StoreProcess()
    try:
        yield store.uri
    finally:
        store.stop()


@pytest.fixture
def mongo_db_name(mongo_uri: str) -> Iterator[str]:
    """A fresh database name, dropped after the test."""
    import pymongo

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    except Exception:
        pass
    finally:
        client.close()


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


def server_config(mongo_uri: str, db_name: str, listeners: Any = (), **sections: Any) -> Any:
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


@pytest.fixture
def start_server(mongo_uri: str, mongo_db_name: str) -> Iterator[Any]:
    """``server = yield start_server(listeners=[{"driver": "gv50"}], persistence={...})``."""
    from twisted.internet import reactor

    from waygps.drivers import find_drivers
    from waygps.service import WayGPSService

    running: list[RunningServer] = []

    @inlineCallbacks
    def start(listeners: Any = (), **sections: Any) -> Any:
        config = server_config(mongo_uri, mongo_db_name, listeners, **sections)
        service = WayGPSService(config, find_drivers(), reactor)
        service.startService()
        yield service.started
        server = RunningServer(service, mongo_db_name, mongo_uri)
        running.append(server)
        return server

    yield start
    for server in reversed(running):
        pytest_twisted.blockon(server.stop())
