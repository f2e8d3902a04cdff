"""The embedded store: SecantusDB (``secantusd-py``) as a child process.

SecantusDB is GPL-2.0, so WayGPS never imports it: it runs as a separate
program speaking MongoDB's wire protocol, installed by the optional extra
``waygps[embedded]``. This service starts it, waits until it answers ``ping``,
and stops it on shutdown; its data stays in ``data_dir`` across restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections import deque
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol, ProcessProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from txmongo.connection import ConnectionPool

from waygps.config import EmbeddedConfig

log = Logger(namespace="waygps.store.embedded")


class StoreError(Exception):
    """The store could not be started or reached; the message is for an operator."""


def find_command(name: str) -> str | None:
    """``name`` beside the running interpreter first (a virtualenv's bin), then on ``PATH``."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


# The child runs in its own process group, so that the SIGINT a terminal sends to its foreground
# group on Ctrl-C reaches twistd only: WayGPS flushes what is queued and stops the store itself,
# last. On Linux the child also gets SIGTERM if WayGPS dies without stopping it (kill -9).
_LAUNCH = (
    "import os, sys\n"
    "os.setpgrp()\n"
    "if sys.platform.startswith('linux'):\n"
    "    import ctypes, signal\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]):  # WayGPS died before prctl\n"
    "        sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def port_in_use(host: str, port: int) -> bool:
    """Something already accepts connections there (another WayGPS's store, a MongoDB)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class _StoreProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred = Deferred()
        self.tail: deque[str] = deque(maxlen=20)
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        self._lines(data)

    errReceived = outReceived

    def _lines(self, data: bytes) -> None:
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.tail.append(line)
                log.debug("secantusd: {line}", line=line)

    def processEnded(self, reason: Any) -> None:
        code = getattr(reason.value, "exitCode", None)
        self.ended.callback(code)


class EmbeddedStore(Service):
    """Runs ``secantusd-py`` for as long as WayGPS runs."""

    name = "embedded-store"

    def __init__(self, config: EmbeddedConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.process: _StoreProcess | None = None
        self._transport: Any = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.config.host}:{self.config.port}/"

    def startService(self) -> None:
        super().startService()
        command = find_command(self.config.command)
        if command is None:
            raise StoreError(
                f"embedded store: {self.config.command!r} not found; install it with "
                "pip install 'waygps[embedded]' or set mongodb.uri to a MongoDB server"
            )
        if port_in_use(self.config.host, self.config.port):
            raise StoreError(
                f"embedded.port: {self.config.host}:{self.config.port} is already in use (another WayGPS "
                "or a MongoDB?); choose another embedded.port, or set mongodb.uri to use that server"
            )
        data_dir = Path(self.config.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"embedded.data_dir: cannot create {data_dir}: {e.strerror}") from None
        args = [
            command, "--host", self.config.host, "--port", str(self.config.port),
            "--storage-path", str(data_dir), "--log-level", "WARNING",
            "--cache-size", self.config.cache_size,
        ]
        if not self.config.replica_set:
            # Without it the store answers as a one-node replica set, which serves change streams
            # (the fleet-wide feed of several instances, docs/scaling.md).
            args.append("--standalone")
        self.process = _StoreProcess()
        self._transport = self.reactor.spawnProcess(self.process, sys.executable,
                                                     [sys.executable, "-c", _LAUNCH, str(os.getpid()), *args], env=dict(os.environ))
        log.info("embedded store: started {command} (pid {pid}), data in {dir}", command=command,
                 pid=self._transport.pid, dir=str(data_dir))

    @inlineCallbacks
    def ready(self) -> Any:
        """Fires when the store answers ``ping``; fails with :class:`StoreError` after the timeout."""
        assert self.process is not None
        deadline = self.reactor.seconds() + self.config.startup_timeout
        endpoint = TCP4ClientEndpoint(self.reactor, self.config.host, self.config.port, timeout=2)
        while True:
            if self.process.ended.called:
                raise StoreError(
                    f"embedded store exited during startup; last output: {' | '.join(self.process.tail) or 'none'}"
                )
            try:
                probe = yield endpoint.connect(Factory.forProtocol(Protocol))
                probe.transport.loseConnection()
                break
            except (ierror.ConnectError, ierror.ConnectionRefusedError, ierror.TimeoutError):
                pass
            if self.reactor.seconds() > deadline:
                raise StoreError(
                    f"embedded store did not listen on {self.config.host}:{self.config.port} within "
                    f"{self.config.startup_timeout:g} s; last output: {' | '.join(self.process.tail) or 'none'}"
                )
            yield deferLater(self.reactor, 0.2, lambda: None)
        pool = ConnectionPool(self.uri, pool_size=1)
        try:
            while True:
                try:
                    ping = pool.admin.command("ping")
                    ping.addTimeout(5, self.reactor)
                    answer = yield ping
                    if answer.get("ok"):
                        break
                except Exception as e:  # still starting
                    if self.process.ended.called:
                        raise StoreError(f"embedded store exited during startup; last output: "
                                         f"{' | '.join(self.process.tail) or 'none'}") from None
                    if self.reactor.seconds() > deadline:
                        raise StoreError(f"embedded store does not answer ping: {e}") from None
                yield deferLater(self.reactor, 0.2, lambda: None)
        finally:
            yield pool.disconnect()
        log.info("embedded store: ready at {uri} (connect with any MongoDB tool)", uri=self.uri)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self.process is None or self.process.ended.called:
            return
        process = self.process
        self._signal(signal.SIGTERM)
        timer = self.reactor.callLater(15, self._signal, signal.SIGKILL)
        code = yield process.ended
        if timer.active():
            timer.cancel()
        log.info("embedded store: stopped (exit status {code})", code=code)

    def _signal(self, sig: int) -> None:
        try:
            self._transport.signalProcess(sig)
        except ierror.ProcessExitedAlready:
            pass
