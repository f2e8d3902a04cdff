"""The whole server as one ``MultiService``, started and stopped in order.

Start: store (embedded child, waited for until it answers ``ping``) ->
MongoDB connection and indexes -> persistence -> sessions -> commands -> history
expiry (when WayGPS deletes expired reports itself: waygps.store.expiry) ->
cluster (lease; on a replica set the fleet-wide feed) -> device listeners ->
web (metrics, health, WebSocket).
Stop, in reverse: listeners stop accepting, the persistence queue is
flushed (pending acknowledgements go out), device connections close, the
other services stop, the embedded store stops last.
"""

from __future__ import annotations

import socket
from typing import Any, Mapping

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from waygps.bus import EventBus
from waygps.config import Config, ListenerConfig
from waygps.drivers.base import DeviceFactory, DriverContext
from waygps.store.connection import MongoStore, redact
from waygps.store.embedded import EmbeddedStore, StoreError
from waygps.store.expiry import HistoryExpiry

log = Logger(namespace="waygps.service")


class StartupError(Exception):
    """Startup cannot go on; the message is one line for an operator."""


class ListenerService(Service):
    """One configured port with its driver."""

    def __init__(self, index: int, listener: ListenerConfig, driver: Any, context: DriverContext) -> None:
        self.index = index
        self.listener = listener
        self.driver = driver
        self.context = context
        self.name = listener.name
        self.port: Any = None
        self.factory: DeviceFactory | None = None
        self.datagram: Any = None

    @property
    def up(self) -> bool:
        return self.port is not None

    @property
    def bound_port(self) -> int:
        return self.port.getHost().port if self.port is not None else 0

    def listen(self) -> None:
        reactor = self.context.reactor
        listener = self.listener
        try:
            if listener.transport == "tcp":
                self.factory = self.driver.tcp_factory(self.context)
                accepting: Any = self.factory
                if listener.proxy_protocol:
                    from waygps.cluster.proxy import ProxyHeaderFactory

                    accepting = ProxyHeaderFactory(self.factory, reactor, listener.name)
                self.port = reactor.listenTCP(listener.port, accepting, backlog=listener.backlog, interface=listener.host)
            else:
                self.datagram = self.driver.udp_protocol(self.context)
                self.port = reactor.listenUDP(listener.port, self.datagram, interface=listener.host)
        except CannotListenError as e:
            raise StartupError(
                f"listener[{self.index}]: cannot listen on {listener.transport} {listener.host}:{listener.port}: "
                f"{e.socketError}"
            ) from None
        log.info("listener {name}: driver {driver} on {transport} {host}:{port}{proxy}", name=listener.name,
                 driver=self.driver.name, transport=listener.transport, host=listener.host, port=self.bound_port,
                 proxy=" (PROXY protocol)" if listener.proxy_protocol else "")

    def stop_listening(self) -> Deferred:
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)

    def pause_reading(self) -> None:
        """Stop reading from open device connections, so the flush at shutdown has an end."""
        if self.factory is not None:
            for protocol in list(self.factory.connections):
                if protocol.transport is not None:
                    protocol.transport.pauseProducing()

    def close_connections(self, reason: str) -> None:
        if self.factory is not None:
            for protocol in list(self.factory.connections):
                protocol.close(reason)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_instance_id() -> str:
    """The host name: stable across restarts, so a restarted instance finds what it left behind."""
    return socket.gethostname() or "waygps"


class WayGPSService(MultiService):
    """Everything ``twistd waygps`` runs."""

    def __init__(self, config: Config, drivers: Mapping[str, Any], reactor: Any = None,
                 exit_on_failure: bool = False, tune_runtime: bool = False) -> None:
        """``tune_runtime``: this service is the process (``twistd waygps``): apply ``[runtime]``."""
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        from waygps.commands.service import CommandService
        from waygps.persistence import PersistenceService
        from waygps.sessions import SessionRegistry

        self.config = config
        self.reactor = reactor
        from waygps.redaction import config_secrets, install

        install(config_secrets(config))  # before anything logs: tokens never reach a log line
        self.exit_on_failure = exit_on_failure
        self.tune_runtime = tune_runtime
        self.instance_id = config.commands.instance_id or default_instance_id()
        self.bus = EventBus()
        self.embedded: EmbeddedStore | None = None
        if config.mongodb.embedded:
            self.embedded = EmbeddedStore(config.embedded, reactor)
            uri = self.embedded.uri
        else:
            uri = config.mongodb.uri
        self.store = MongoStore(config.mongodb, uri, max_delay=config.persistence.reconnect_max_delay)
        self.persistence = PersistenceService(self.store, config, self.bus, reactor)
        self.expiry: HistoryExpiry | None = (
            HistoryExpiry(self.store, config.retention.days, config.retention.interval, reactor)
            if config.retention.by_waygps(config.mongodb) else None)
        self.sessions = SessionRegistry(self.store, self.persistence, self.bus, reactor, self.instance_id)
        self.commands = CommandService(self.store, self.sessions, self.bus, config.commands, reactor,
                                       instance_id=self.instance_id, drivers=drivers)
        from waygps.rejected import RejectedFrames
        from waygps.stats.collector import StatsCollector
        from waygps.stats.recorder import NULL_STATS

        self.rejected = RejectedFrames(self.store, config, reactor)
        self.stats: Any = (StatsCollector(config.stats, self.store, self.bus, reactor, self.instance_id)
                           if config.stats.enabled else None)
        self.persistence.stats = self.stats or NULL_STATS
        self.listeners: list[ListenerService] = []
        for index, listener in enumerate(config.listeners):
            context = DriverContext(listener=listener, sink=self.persistence, sessions=self.sessions,
                                    reactor=reactor, rejected=self.rejected, stats=self.stats or NULL_STATS)
            self.listeners.append(ListenerService(index, listener, drivers[listener.driver], context))
        from waygps.cluster.service import ClusterService
        from waygps.web.service import WebService

        self.cluster = ClusterService(self)
        self.web = WebService(self)
        self.started: Deferred = Deferred()
        self._running_parts: list[Any] = []

    # --- start -------------------------------------------------------------
    def startService(self) -> None:
        Service.startService(self)
        if self.tune_runtime:
            from waygps.runtime import tune_collector

            thresholds = tune_collector(self.config.runtime)
            log.info("runtime: garbage collector thresholds {thresholds}", thresholds=thresholds)
        d = self._start()
        d.addCallbacks(self._started, self._failed)

    @inlineCallbacks
    def _start(self) -> Any:
        if self.embedded is not None:
            try:
                self.embedded.startService()
            except StoreError as e:
                raise StartupError(str(e)) from None
            self._running_parts.append(self.embedded)
            try:
                yield self.embedded.ready()
            except StoreError as e:
                raise StartupError(str(e)) from None
            log.info("store: embedded SecantusDB at {uri}, data in {dir}", uri=self.embedded.uri,
                     dir=self.config.embedded.data_dir)
        else:
            log.info("store: MongoDB at {uri}", uri=redact(self.config.mongodb.uri))
        self.store.connect()
        try:
            ping = self.store.ping()
            ping.addTimeout(self.config.mongodb.connect_timeout, self.reactor)
            yield ping
        except Exception as e:
            raise StartupError(
                f"mongodb.uri: cannot reach {redact(self.store.uri)} within "
                f"{self.config.mongodb.connect_timeout:g} s ({type(e).__name__}: {e})"
            ) from None
        yield self.persistence.prepare()
        for part in (self.persistence, self.sessions, self.commands):
            yield maybeDeferred(part.startService)
            self._running_parts.append(part)
        yield self.sessions.reset_stale()
        if self.expiry is not None:
            self.expiry.startService()
            self._running_parts.append(self.expiry)
        if self.stats is not None:
            yield self.stats.ensure_indexes()
            self.stats.start()
            self._running_parts.append(self.stats)
        yield self.cluster.start()
        self._running_parts.append(self.cluster)
        for listener in self.listeners:
            listener.listen()
            self._running_parts.append(listener)
        yield self.web.start()
        self._running_parts.append(self.web)

    def exposed_addresses(self) -> list[str]:
        """Every address this instance listens on, as ``transport host:port (what)``."""
        out = [f"{l.listener.transport} {_address(l.listener.host, l.bound_port)} ({l.listener.name})"
               for l in self.listeners]
        out.append(f"tcp {_address(self.web.config.host, self.web.bound_port)} (web)")
        return out
    @property
    def feed(self) -> Any:
        """What the WebSocket feed listens to: the local bus, or the change-stream feed of a replica set."""
        return self.cluster.feed

    def _started(self, _: Any) -> None:
        log.info("waygps: running ({n} listeners, instance {instance})", n=len(self.listeners),
                 instance=self.instance_id)
        log.info("waygps: listening on {addresses}", addresses=", ".join(self.exposed_addresses()))
        if self.tune_runtime and self.config.runtime.gc_freeze:
            from waygps.runtime import freeze_startup

            log.info("runtime: {count} start-up objects left out of garbage collection",
                     count=freeze_startup(self.config.runtime))
        self.started.callback(self)

    def _failed(self, failure: Any) -> None:
        if failure.check(StartupError):
            log.critical("waygps: cannot start: {why}", why=failure.getErrorMessage())
        else:
            log.failure("waygps: cannot start", failure)
        self.started.errback(failure)
        self.started.addErrback(lambda _: None)
        if self.exit_on_failure:
            from waygps.cli.exit import stop_with_status

            stop_with_status(self.reactor, 1)

    # --- stop --------------------------------------------------------------
    def stopService(self) -> Deferred:
        Service.stopService(self)
        return self._stop()

    @inlineCallbacks
    def _stop(self) -> Any:
        parts = self._running_parts
        self._running_parts = []
        listeners = [p for p in parts if isinstance(p, ListenerService)]
        for listener in listeners:
            yield listener.stop_listening()
            listener.pause_reading()
        if self.persistence in parts:
            yield _quietly(self.persistence.flush())
        for listener in listeners:
            listener.close_connections("server shutting down")
            if listener.datagram is not None:
                listener.datagram.stopProtocol()
        self.rejected.stop()  # diagnosis only: what still waits is not worth delaying the stop
        for part in reversed(parts):
            if part in listeners:
                continue
            if part is self.web:
                yield _quietly(maybeDeferred(self.web.stop))
            elif part is self.stats:
                yield _quietly(self.stats.stop())
            elif part is self.cluster:
                yield _quietly(maybeDeferred(self.cluster.stop))
            elif part is self.embedded:
                yield _quietly(self.store.close())
                yield _quietly(self.embedded.stopService())
            else:
                log.debug("stopping {part}", part=type(part).__name__)
                yield _quietly(maybeDeferred(part.stopService))
        if self.embedded is None or self.embedded not in parts:
            log.debug("closing the store connection")
            yield _quietly(self.store.close())
        log.info("waygps: stopped")
        if self.exit_on_failure:
            # A clean stop on SIGINT / SIGTERM exits 0: twistd would otherwise re-raise the
            # signal it caught (reactor._exitSignal) and the process would end "killed".
            self.reactor._exitSignal = None


def _quietly(d: Deferred) -> Deferred:
    return d.addErrback(lambda f: log.failure("while stopping", f))


def build_service(config: Config, drivers: Mapping[str, Any] | None = None, reactor: Any = None,
                  exit_on_failure: bool = False, tune_runtime: bool = False) -> WayGPSService:
    if drivers is None:
        from waygps.drivers import find_drivers

        drivers = find_drivers()
    return WayGPSService(config, drivers, reactor, exit_on_failure=exit_on_failure, tune_runtime=tune_runtime)
