"""The embedded store for tests: a ``secantusd-py`` child process on a free port.

SecantusDB is GPL-2.0 and is never imported: it runs as a separate process,
started here with ``subprocess`` (not the reactor) so it outlives any one test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

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
            import pytest

            pytest.exit("secantusd-py not found: install waygps[embedded] (make test does)", returncode=3)
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


__all__ = ["STORE_START_TIMEOUT", "StoreProcess", "free_port"]
