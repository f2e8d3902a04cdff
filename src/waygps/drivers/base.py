"""The thin Twisted adapter every built-in driver uses, and any plugin may.

A driver is a sans-IO codec (``IStreamCodec`` / ``IDatagramCodec``) plus a
:class:`CodecDriver` that names it. This module moves bytes between sockets
and codecs and carries out the codec's actions (``waygps.actions``):

* ``Store`` -> ``sink.deliver(events)``; its ``ack`` is written only when that
  Deferred fires, acknowledgements of one connection in the order of their
  reports; on failure ``nack`` (usually nothing) is written.
* ``Identified`` -> the allow-list (``sessions.authorize``) decides; then the
  session registry binds the device to this connection.
* ``Rejected`` -> a log line and ``waygps_frames_rejected{reason}``.
* ``Close`` -> the connection is closed.

Time comes from the reactor (``seconds()``) and is handed to the codec as
``now``, so tests drive it with ``MemoryReactorClock`` / ``task.Clock``.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from attrs import frozen
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol, Protocol, ServerFactory
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from waygps import metrics
from waygps.actions import Action, Close, Flagged, Identified, Rejected, Send, Store
from waygps.commands.model import Command
from waygps.config import ListenerConfig
from waygps.drivers.immediate import write_now
from waygps.events import Alarm, CommandAck, Heartbeat, Position
from waygps.interfaces import IDeviceConnection, IDriver, IEventSink, INotifyingSink, ISessionRegistry
from waygps.rejected import RejectedFrame
from waygps.stats.recorder import NULL_STATS

log = Logger(namespace="waygps.device")

MAX_BACKLOG = 10_000


# Close kinds that end a device's connection on a protocol error (published as ``DeviceDisconnected.error``).
PROTOCOL_ERRORS = frozenset({"protocol", "codec_error"})


_fromtimestamp = datetime.fromtimestamp


def utc(seconds: float) -> datetime:
    return _fromtimestamp(seconds, timezone.utc)


def escaped(data: bytes, limit: int = 64) -> str:
    """A log-safe excerpt: printable ASCII kept, the rest as ``\\xNN``."""
    text = data[:limit].decode("ascii", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text + ("..." if len(data) > limit else "")


@frozen
class DriverContext:
    """What a listener's driver is given."""

    listener: ListenerConfig
    sink: IEventSink
    sessions: ISessionRegistry
    reactor: Any
    rejected: Any = None  # waygps.rejected.RejectedFrames: where rejected / odd frames are kept
    stats: Any = NULL_STATS  # IStatsRecorder: the daily reception statistics


def keep_frame(context: DriverContext, driver: str, imei: str | None, peer: str,
               action: Rejected | Flagged) -> None:
    """Hand a rejected frame (or an odd one the codec gave whole) to ``FramesRejeitados``; never blocks."""
    keeper = context.rejected
    if keeper is None:
        return
    data = action.raw or (action.excerpt if isinstance(action, Rejected) else b"")
    if data:
        keeper.offer(RejectedFrame(time=utc(context.reactor.seconds()), listener=context.listener.name,
                                   driver=driver, imei=imei, peer=peer, reason=action.reason, data=data))


_REPLY = "reply"  # an ``_Ack`` that is an immediate answer, written in its turn


class _Ack:
    """One report's place in the acknowledgement order; called once by the sink with its answer."""

    __slots__ = ("queue", "item", "ok")

    def __init__(self, queue: "_AckQueue", item: Any, ok: bool | str | None = None) -> None:
        self.queue = queue
        self.item = item  # the Store action, or the bytes of a reply
        self.ok = ok

    def __call__(self, error: Exception | None) -> None:
        if self.ok is None:
            self.ok = error is None
            self.queue._flush()

    def by(self, result: Any) -> None:
        """The answer of a sink's Deferred (a callback and an errback at once)."""
        self(result.value if isinstance(result, Failure) else None)


class _AckQueue:
    """Acknowledgements written in report order, each once its store settled."""

    __slots__ = ("_write", "_driver", "_entries")

    def __init__(self, write: Callable[[bytes], None], driver: str) -> None:
        self._write = write
        self._driver = driver
        # Made per report in flight and dropped when empty: most connections are idle, and a
        # closed-loop device has one report in flight, so a short list beats a deque here.
        self._entries: list[_Ack] | None = None

    def expect(self, store: Store) -> _Ack:
        """The answer callable of ``store``, queued behind the reports before it."""
        ack = _Ack(self, store)
        if self._entries is None:
            self._entries = [ack]
        else:
            self._entries.append(ack)
        return ack

    def add(self, store: Store, stored: Deferred) -> None:
        stored.addBoth(self.expect(store).by)

    def reply(self, data: bytes) -> None:
        """An immediate answer (``ERR …``) that must not overtake earlier reports' acks."""
        if self._entries:
            self._entries.append(_Ack(self, data, _REPLY))
        else:
            self._write(data)

    def _flush(self) -> None:
        entries = self._entries
        if not entries:
            return
        done = sent = withheld = 0
        for ack in entries:
            ok = ack.ok
            if ok is None:
                break
            done += 1
            item = ack.item
            if ok is _REPLY:
                self._write(item)
            elif ok:
                if item.ack:
                    self._write(item.ack)
                    sent += 1
            else:
                withheld += 1
                if item.nack:
                    self._write(item.nack)
        if not done:
            return
        if done == len(entries):
            self._entries = None  # an idle connection keeps no empty list
        else:
            del entries[:done]
        if sent:
            _labelled(metrics.ACKS_SENT, self._driver).inc(sent)
        if withheld:
            _labelled(metrics.ACKS_WITHHELD, self._driver).inc(withheld)

    def __len__(self) -> int:
        return len(self._entries) if self._entries else 0


def _expects_answer(codec: Any, command: Command) -> bool:
    """Whether the device acknowledges ``command`` (a codec says no with ``expects_answer``)."""
    ask = getattr(codec, "expects_answer", None)
    return True if ask is None else bool(ask(command))


def _cuts_engine(codec: Any, command: Command) -> bool:
    """Whether ``command`` cuts the engine: the codec's ``cuts_engine`` when it has one, else ``block``.
    A codec that raises is taken to say yes (the guard then waits rather than cuts)."""
    ask = getattr(codec, "cuts_engine", None)
    if ask is None:
        return command.type == "block"
    try:
        return command.type == "block" or bool(ask(command))
    except Exception:
        log.failure("{driver}: cuts_engine raised; treating command {type} as an engine cut",
                    driver=getattr(codec, "protocol", "?"), type=command.type)
        return True


# Labelled children of the per-report counters, looked up once (``labels()`` costs more than ``inc()``).
_children: dict[tuple[int, str], Any] = {}


def _labelled(metric: Any, label: str) -> Any:
    key = (id(metric), label)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(label)
    return child


def _count_events(driver: str, store: Store) -> None:
    _labelled(metrics.FRAMES_DECODED, driver).inc()
    _labelled(metrics.FRAMES_RECEIVED, driver).inc()


@implementer(IDeviceConnection)
class DeviceProtocol(Protocol):
    """One TCP connection to one device, driven by a stream codec.

    One is held per connected device, so its attributes are slots (memory per connection,
    docs/benchmarks.md). Twisted's ``Protocol`` has no ``__slots__``, so the attributes Twisted
    sets (``transport``, ``connected``, ``factory``) are slots too, set here: anything else
    assigned to an instance would bring back a ``__dict__``.
    """

    __slots__ = ("transport", "connected", "factory", "codec", "context", "protocol", "listener", "imei",
                 "_host", "_deadline", "_deadline_reason", "_acks", "_backlog", "_gate", "_closing",
                 "_close_reason", "_close_kind", "_paused_for_gate")

    transport_name = "tcp"

    def __init__(self, factory: "DeviceFactory", codec: Any) -> None:
        self.transport: Any = None
        self.connected = 0
        self.factory = factory
        self.codec = codec
        self.context = factory.context
        self.protocol = factory.driver.name
        self.listener = self.context.listener.name
        self.imei: str | None = None
        self._host = "?"  # the client's address as the factory counted it (max_connections_per_ip)
        # Identify / idle deadline (reactor seconds) and its reason; one timer per listener expires them.
        self._deadline: float | None = None
        self._deadline_reason = ""
        self._acks: _AckQueue | None = None
        # Actions not yet carried out; made when needed and dropped when empty (most connections idle).
        self._backlog: deque[Action] | None = None
        self._gate: Deferred | None = None
        self._closing = False
        self._close_reason = "closed by device"
        self._close_kind = "device"
        self._paused_for_gate = False

    @property
    def peer(self) -> str:
        """``host:port`` of the device, for logs and session events: read from the transport when
        asked (it is not kept as a string per connection); ``?`` before the connection is made."""
        transport = self.transport
        if transport is None:
            return "?"
        address = transport.getPeer()
        return f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"

    # --- Twisted ---------------------------------------------------------
    def connectionMade(self) -> None:
        self._acks = _AckQueue(self._write, self.protocol)
        self.context.sink.watch(self.transport)
        metrics.CONNECTIONS_OPEN.labels(self.listener).inc()
        self._arm(self.context.listener.identify_timeout, "not identified in time")
        log.debug("{driver} {peer}: connected to {listener}", driver=self.protocol, peer=self.peer,
                  listener=self.listener)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        context = self.context
        seconds = context.reactor.seconds()
        now = _fromtimestamp(seconds, timezone.utc)
        if self.imei is not None:
            # the idle deadline moves later: no timer to touch (``_arm`` written out: once per read)
            deadline = seconds + context.listener.idle_timeout
            if self._deadline is None or deadline < self._deadline:
                self._arm(context.listener.idle_timeout, "idle")
            else:
                self._deadline = deadline
                self._deadline_reason = "idle"
            context.sessions.activity(self, now)
        try:
            actions = self.codec.receive(data, now)
        except Exception:
            # A codec bug must cost this connection, never the server.
            log.failure("{driver} {peer}: codec raised; closing", driver=self.protocol, peer=self.peer)
            metrics.FRAMES_REJECTED.labels(self.protocol, "codec_error").inc()
            self._lose("codec error", kind="codec_error", abort=True)
            return
        if not actions:
            return
        if self._backlog is None and self._gate is None:
            # The usual case: nothing waits, so the actions are carried out at once, in order.
            if not isinstance(actions, (list, tuple)):
                actions = list(actions)
            for index, action in enumerate(actions):
                self._apply(action)
                if self._gate is not None or self._closing:
                    actions = actions[index + 1:]  # an allow-list answer is awaited: the rest waits for it
                    break
            else:
                return
            if self._closing or not actions:
                return
            self._backlog = deque(actions)
        elif self._backlog is None:
            self._backlog = deque(actions)
        else:
            self._backlog.extend(actions)
        if len(self._backlog) > MAX_BACKLOG:
            # Only possible while the allow-list answer is pending (reads are paused then).
            metrics.FRAMES_REJECTED.labels(self.protocol, "backlog_overflow").inc()
            self._lose("too much data before identification was confirmed", kind="protocol", abort=True)
            return
        self._run()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        self._cancel_timer()
        self.context.sink.unwatch(self.transport)
        metrics.CONNECTIONS_OPEN.labels(self.listener).dec()
        metrics.CONNECTIONS_CLOSED.labels(self.listener, self._close_kind).inc()
        self.factory.forget(self)
        if self.imei is not None:
            if self._close_kind in PROTOCOL_ERRORS:
                self.context.sessions.detach(self, self._close_reason, error=self._close_reason)
            else:
                self.context.sessions.detach(self, self._close_reason)
        log.info("{driver} {imei} {peer}: disconnected ({why})", driver=self.protocol, imei=self.imei,
                 peer=self.peer, why=self._close_reason)

    # --- IDeviceConnection -----------------------------------------------
    def send_command(self, command: Command) -> bytes:
        data = self.codec.encode_command(command, utc(self.context.reactor.seconds()))
        self._write(data)
        log.info("{driver} {imei} {peer}: command {type} {id} written", driver=self.protocol,
                 imei=self.imei, peer=self.peer, type=command.type, id=command.id)
        return data

    def expects_answer(self, command: Command) -> bool:
        return _expects_answer(self.codec, command)

    def cuts_engine(self, command: Command) -> bool:
        return _cuts_engine(self.codec, command)

    def close(self, reason: str) -> None:
        log.info("{driver} {imei} {peer}: closing: {why}", driver=self.protocol, imei=self.imei,
                 peer=self.peer, why=reason)
        # Closed from outside: replaced by a newer connection (the old link is likely dead, so do
        # not wait for it to drain), or shutdown.
        replaced = "replaced" in reason
        self._lose(reason, kind="replaced" if replaced else "closed_by_server", abort=replaced)

    # --- actions -----------------------------------------------------------
    def _run(self) -> None:
        backlog = self._backlog
        while backlog and self._gate is None and not self._closing:
            self._apply(backlog.popleft())
        if not backlog and self._backlog is backlog:
            self._backlog = None

    def _apply(self, action: Action) -> None:
        if isinstance(action, Send):
            self._write(action.data)
        elif isinstance(action, Store):
            if self.imei is None:
                metrics.FRAMES_REJECTED.labels(self.protocol, "unidentified").inc()
                log.warn("{driver} {peer}: report before identification dropped", driver=self.protocol,
                         peer=self.peer)
                return
            imei = self.imei
            events = action.events
            for event in events:
                if getattr(event, "imei", imei) != imei:
                    self._foreign(events)
                    return
            factory = self.factory
            factory.decoded.inc()
            factory.received.inc()
            self.context.stats.received(self.listener, events)
            assert self._acks is not None
            submit = factory.submit
            if submit is not None:
                ack = self._acks.expect(action)
                try:
                    submit(events, ack)
                except Exception:
                    log.failure("{driver} {imei} {peer}: the event sink raised", driver=self.protocol,
                                imei=self.imei, peer=self.peer)
                    ack(RuntimeError("the event sink raised"))  # the report is not acknowledged
                return
            try:
                stored = self.context.sink.deliver(events)
                if not isinstance(stored, Deferred):
                    stored = succeed(stored)  # (a sink that answers at once with a plain value)
            except Exception:
                stored = fail()  # the sink's own bug: the report is not acknowledged
                log.failure("{driver} {imei} {peer}: the event sink raised", stored.result, driver=self.protocol,
                            imei=self.imei, peer=self.peer)
            self._acks.add(action, stored)
        elif isinstance(action, Identified):
            self._identify(action)
        elif isinstance(action, Rejected):
            metrics.FRAMES_REJECTED.labels(self.protocol, action.reason).inc()
            metrics.FRAMES_RECEIVED.labels(self.protocol).inc()
            self.context.stats.rejected(self.listener, action.reason)
            log.warn("{driver} {imei} {peer}: rejected ({reason}): {excerpt}", driver=self.protocol,
                     imei=self.imei, peer=self.peer, reason=action.reason, excerpt=escaped(action.excerpt))
            keep_frame(self.context, self.protocol, self.imei, self.peer, action)
            if action.reply:
                assert self._acks is not None
                self._acks.reply(action.reply)
        elif isinstance(action, Flagged):
            metrics.FRAMES_FLAGGED.labels(self.protocol, action.reason).inc()
            self.context.stats.flagged(self.listener, action.reason)
            log.warn("{driver} {imei} {peer}: {reason}: {excerpt}", driver=self.protocol, imei=self.imei,
                     peer=self.peer, reason=action.reason, excerpt=escaped(action.excerpt))
            keep_frame(self.context, self.protocol, self.imei, self.peer, action)
        elif isinstance(action, Close):
            log.warn("{driver} {imei} {peer}: closing: {why}", driver=self.protocol, imei=self.imei,
                     peer=self.peer, why=action.reason)
            self._lose(action.reason, kind="protocol")

    def _foreign(self, events: Iterable[Any]) -> None:
        # Another device's reports on this connection (shared SIM, spoof): never stored under the
        # allow-list's nose, never acknowledged.
        metrics.FRAMES_REJECTED.labels(self.protocol, "imei_mismatch").inc()
        others = sorted({e.imei for e in events if getattr(e, "imei", self.imei) != self.imei})
        log.warn("{driver} {imei} {peer}: report of another device {other} dropped",
                 driver=self.protocol, imei=self.imei, peer=self.peer, other=",".join(others))

    def _identify(self, action: Identified) -> None:
        if self.imei == action.imei:
            return
        if self.imei is not None:
            metrics.FRAMES_REJECTED.labels(self.protocol, "imei_changed").inc()
            log.warn("{driver} {imei} {peer}: frame from another device {other} ignored",
                     driver=self.protocol, imei=self.imei, peer=self.peer, other=action.imei)
            return
        gate = maybeDeferred(self.context.sessions.authorize, action.imei, self.context.listener)
        if not gate.called:
            # Stop reading until the allow-list answers, so the backlog cannot grow.
            self._paused_for_gate = True
            self.transport.pauseProducing()
        self._gate = gate

        def decided(allowed: bool) -> None:
            self._gate = None
            if self._paused_for_gate:
                self._paused_for_gate = False
                if not self._closing:
                    self.transport.resumeProducing()
            if self._closing:
                return
            if not allowed:
                metrics.CONNECTIONS_REFUSED.labels(self.listener, "unknown_device").inc()
                log.warn("{driver} {imei} {peer}: device not registered; refused", driver=self.protocol,
                         imei=action.imei, peer=self.peer)
                if action.reject:
                    self._write(action.reject)
                self._backlog = None
                self._lose("unknown device", kind="refused")
                return
            self.imei = action.imei
            if action.accept:
                self._write(action.accept)
            self._arm(self.context.listener.idle_timeout, "idle")
            self.context.sessions.attach(self)
            log.info("{driver} {imei} {peer}: identified on {listener}", driver=self.protocol,
                     imei=self.imei, peer=self.peer, listener=self.listener)
            self._run()

        def failed(failure: Failure) -> None:
            log.failure("{driver} {imei} {peer}: allow-list check failed; closing", failure,
                        driver=self.protocol, imei=action.imei, peer=self.peer)
            self._gate = None
            self._lose("allow-list unavailable", kind="refused", abort=True)

        gate.addCallbacks(decided, failed)

    # --- plumbing ----------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if not self._closing and self.transport is not None:
            write_now(self.transport, data)

    def _lose(self, reason: str, kind: str = "server", abort: bool = False) -> None:
        if self._closing:
            return
        self._close_reason = reason
        self._close_kind = kind
        self._closing = True
        self._cancel_timer()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def _arm(self, seconds: float, reason: str) -> None:
        """(Re)set this connection's deadline: an attribute, not a timer of its own (memory, CPU)."""
        deadline = self.context.reactor.seconds() + seconds
        later = self._deadline is not None and deadline >= self._deadline
        self._deadline = deadline
        self._deadline_reason = reason
        if not later:
            self.factory.expire_at(deadline)

    def _cancel_timer(self) -> None:
        self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        log.info("{driver} {imei} {peer}: {why}; closing", driver=self.protocol, imei=self.imei,
                 peer=self.peer, why=reason)
        # A silent peer may be a dead mobile link: do not wait for it to read our FIN.
        self._lose(reason, kind="idle" if reason == "idle" else "identify_timeout", abort=True)


class DeviceFactory(ServerFactory):
    """Builds a :class:`DeviceProtocol` per connection, within the listener's limits."""

    noisy = False

    def __init__(self, driver: "CodecDriver", context: DriverContext) -> None:
        self.driver = driver
        self.context = context
        self.connections: set[DeviceProtocol] = set()
        self._per_ip: dict[str, int] = {}
        self._expiry: Any = None  # the one DelayedCall for every connection's identify / idle deadline
        # Per report: the sink's callable path when it has one (no Deferred per report), and the
        # two per-report counters' children, looked up once.
        sink = context.sink
        self.submit: Callable[[Any, Callable[[Exception | None], None]], None] | None = (
            sink.submit if INotifyingSink.providedBy(sink) else None)
        self.decoded = _labelled(metrics.FRAMES_DECODED, driver.name)
        self.received = _labelled(metrics.FRAMES_RECEIVED, driver.name)

    def expire_at(self, deadline: float) -> None:
        """Make sure the connections are checked at ``deadline`` (deadlines pushed later need nothing)."""
        call, reactor = self._expiry, self.context.reactor
        if call is not None and call.active():
            if call.getTime() <= deadline:
                return
            call.cancel()
        self._expiry = reactor.callLater(max(0.0, deadline - reactor.seconds()), self._expire)

    def _expire(self) -> None:
        """Close the connections whose deadline passed; wait for the next one."""
        self._expiry = None
        now = self.context.reactor.seconds() + 1e-6  # float rounding of "deadline - now" must not delay it
        due: list[DeviceProtocol] = []
        earliest: float | None = None
        for protocol in self.connections:
            deadline = protocol._deadline
            if deadline is None:
                continue
            if deadline <= now:
                due.append(protocol)
            elif earliest is None or deadline < earliest:
                earliest = deadline
        for protocol in due:
            if protocol._deadline is not None:
                protocol._expired(protocol._deadline_reason)
        if earliest is not None:
            self.expire_at(earliest)

    def buildProtocol(self, addr: Any) -> DeviceProtocol | None:
        listener = self.context.listener
        host = getattr(addr, "host", "?")
        if listener.max_connections and len(self.connections) >= listener.max_connections:
            return self._refuse(host, "max_connections")
        if listener.max_connections_per_ip and self._per_ip.get(host, 0) >= listener.max_connections_per_ip:
            return self._refuse(host, "max_connections_per_ip")
        protocol = DeviceProtocol(self, self.driver.stream_codec(listener))
        self.connections.add(protocol)
        self._per_ip[host] = self._per_ip.get(host, 0) + 1
        protocol._host = host
        return protocol

    def forget(self, protocol: DeviceProtocol) -> None:
        if protocol in self.connections:
            self.connections.discard(protocol)
            host = protocol._host
            left = self._per_ip.get(host, 1) - 1
            if left > 0:
                self._per_ip[host] = left
            else:
                self._per_ip.pop(host, None)
            if not self.connections and self._expiry is not None and self._expiry.active():
                self._expiry.cancel()  # no deadline left to watch
                self._expiry = None

    def _refuse(self, host: str, reason: str) -> None:
        metrics.CONNECTIONS_REFUSED.labels(self.context.listener.name, reason).inc()
        log.warn("{driver} {peer}: connection refused on {listener}: {why}", driver=self.driver.name,
                 peer=host, listener=self.context.listener.name, why=reason)
        return None


@implementer(IDeviceConnection)
class UdpPeer:
    """A UDP device as a session: commands go to the address of its last datagram."""

    transport_name = "udp"

    def __init__(self, protocol: "DeviceDatagramProtocol", imei: str, address: tuple[str, int]) -> None:
        self._protocol = protocol
        self.imei = imei
        self.address = address
        self.protocol = protocol.driver.name
        self.listener = protocol.context.listener.name
        self.timer: Any = None

    @property
    def peer(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def send_command(self, command: Command) -> bytes:
        data = self._protocol.codec.encode_command(command, utc(self._protocol.context.reactor.seconds()))
        self._protocol.transport.write(data, self.address)
        return data

    def expects_answer(self, command: Command) -> bool:
        return _expects_answer(self._protocol.codec, command)

    def cuts_engine(self, command: Command) -> bool:
        return _cuts_engine(self._protocol.codec, command)

    def close(self, reason: str) -> None:
        self._protocol.expire(self.imei, reason)


class DeviceDatagramProtocol(DatagramProtocol):
    """A UDP listener: one datagram in, its actions out, replies to its sender."""

    noisy = False

    def __init__(self, driver: "CodecDriver", context: DriverContext) -> None:
        self.driver = driver
        self.context = context
        self.codec = driver.datagram_codec(context.listener)
        self.peers: dict[str, UdpPeer] = {}
        self._per_ip: dict[str, int] = {}

    def datagramReceived(self, data: bytes, address: tuple[str, int]) -> None:
        now = utc(self.context.reactor.seconds())
        try:
            actions = list(self.codec.receive_datagram(data, now))
        except Exception:
            log.failure("{driver} {peer}: codec raised on a datagram", driver=self.driver.name,
                        peer=f"{address[0]}:{address[1]}")
            metrics.FRAMES_REJECTED.labels(self.driver.name, "codec_error").inc()
            return
        self._carry_out(deque(actions), address, None, now)

    def _carry_out(self, actions: deque[Action], address: tuple[str, int], peer: UdpPeer | None,
                   now: datetime) -> None:
        name = self.driver.name
        where = f"{address[0]}:{address[1]}"
        while actions:
            action = actions.popleft()
            if isinstance(action, Send):
                self.transport.write(action.data, address)
            elif isinstance(action, Rejected):
                metrics.FRAMES_REJECTED.labels(name, action.reason).inc()
                metrics.FRAMES_RECEIVED.labels(name).inc()
                self.context.stats.rejected(self.context.listener.name, action.reason)
                log.warn("{driver} {peer}: datagram rejected ({reason}): {excerpt}", driver=name, peer=where,
                         reason=action.reason, excerpt=escaped(action.excerpt))
                keep_frame(self.context, name, peer.imei if peer else None, where, action)
                if action.reply:
                    self.transport.write(action.reply, address)
            elif isinstance(action, Flagged):
                metrics.FRAMES_FLAGGED.labels(name, action.reason).inc()
                self.context.stats.flagged(self.context.listener.name, action.reason)
                log.warn("{driver} {peer}: {reason}: {excerpt}", driver=name, peer=where, reason=action.reason,
                         excerpt=escaped(action.excerpt))
                keep_frame(self.context, name, peer.imei if peer else None, where, action)
            elif isinstance(action, Close):
                metrics.FRAMES_REJECTED.labels(name, "dropped").inc()
                log.warn("{driver} {peer}: datagram dropped: {why}", driver=name, peer=where, why=action.reason)
                return
            elif isinstance(action, Identified):
                d = maybeDeferred(self.context.sessions.authorize, action.imei, self.context.listener)

                def decided(allowed: bool, action: Identified = action) -> None:
                    if not allowed:
                        metrics.CONNECTIONS_REFUSED.labels(self.context.listener.name, "unknown_device").inc()
                        log.warn("{driver} {imei} {peer}: device not registered; datagram dropped",
                                 driver=name, imei=action.imei, peer=where)
                        if action.reject:
                            self.transport.write(action.reject, address)
                        return
                    peer = self._touch(action.imei, address, now)
                    if peer is None:
                        return
                    if action.accept:
                        self.transport.write(action.accept, address)
                    self._carry_out(actions, address, peer, now)

                def failed(failure: Failure) -> None:
                    metrics.CONNECTIONS_REFUSED.labels(self.context.listener.name, "allow_list_unavailable").inc()
                    log.failure("{driver} {peer}: allow-list check failed; datagram dropped", failure,
                                driver=name, peer=where)

                d.addCallbacks(decided, failed)
                return
            elif isinstance(action, Store):
                if peer is None:
                    metrics.FRAMES_REJECTED.labels(name, "unidentified").inc()
                    log.warn("{driver} {peer}: report before identification dropped", driver=name, peer=where)
                    continue
                if any(getattr(e, "imei", peer.imei) != peer.imei for e in action.events):
                    metrics.FRAMES_REJECTED.labels(name, "imei_mismatch").inc()
                    log.warn("{driver} {imei} {peer}: report of another device dropped", driver=name,
                             imei=peer.imei, peer=where)
                    continue
                _count_events(name, action)
                self.context.stats.received(self.context.listener.name, action.events)
                stored = maybeDeferred(self.context.sink.deliver, action.events)
                stored.addCallbacks(self._acked, self._withheld, callbackArgs=(action, address),
                                    errbackArgs=(action, address))

    def _acked(self, _: Any, store: Store, address: tuple[str, int]) -> None:
        if store.ack:
            self.transport.write(store.ack, address)
            metrics.ACKS_SENT.labels(self.driver.name).inc()

    def _withheld(self, failure: Failure, store: Store, address: tuple[str, int]) -> None:
        metrics.ACKS_WITHHELD.labels(self.driver.name).inc()
        if store.nack:
            self.transport.write(store.nack, address)

    def _touch(self, imei: str, address: tuple[str, int], now: datetime) -> UdpPeer | None:
        peer = self.peers.get(imei)
        if peer is None:
            listener = self.context.listener
            refusal = None
            if listener.max_connections and len(self.peers) >= listener.max_connections:
                refusal = "max_connections"
            elif listener.max_connections_per_ip and self._per_ip.get(address[0], 0) >= listener.max_connections_per_ip:
                refusal = "max_connections_per_ip"
            if refusal is not None:
                metrics.CONNECTIONS_REFUSED.labels(listener.name, refusal).inc()
                log.warn("{driver} {imei} {peer}: datagram dropped: {why}", driver=self.driver.name, imei=imei,
                         peer=f"{address[0]}:{address[1]}", why=refusal)
                return None
            peer = UdpPeer(self, imei, address)
            self.peers[imei] = peer
            self._per_ip[address[0]] = self._per_ip.get(address[0], 0) + 1
            self.context.sessions.attach(peer)
        elif peer.address != address:
            self._release_ip(peer.address[0])
            self._per_ip[address[0]] = self._per_ip.get(address[0], 0) + 1
            peer.address = address
        if peer.timer is not None and peer.timer.active():
            peer.timer.reset(self.context.listener.idle_timeout)
        else:
            peer.timer = self.context.reactor.callLater(self.context.listener.idle_timeout, self.expire, imei, "idle")
        self.context.sessions.activity(peer, now)
        return peer

    def expire(self, imei: str, reason: str) -> None:
        peer = self.peers.pop(imei, None)
        if peer is None:
            return
        self._release_ip(peer.address[0])
        if peer.timer is not None and peer.timer.active():
            peer.timer.cancel()
        self.context.sessions.detach(peer, reason)

    def _release_ip(self, host: str) -> None:
        left = self._per_ip.get(host, 1) - 1
        if left > 0:
            self._per_ip[host] = left
        else:
            self._per_ip.pop(host, None)

    def stopProtocol(self) -> None:
        for imei in list(self.peers):
            self.expire(imei, "listener stopped")


@implementer(IPlugin, IDriver)
class CodecDriver:
    """An ``IDriver`` made of codec factories: what a plugin module instantiates.

    ``stream_codec(listener)`` and ``datagram_codec(listener)`` build sans-IO
    codecs from the listener's configuration; ``options`` are the driver's own
    listener keys with their defaults.
    """

    def __init__(self, name: str, description: str, *,
                 stream_codec: Callable[[ListenerConfig], Any] | None = None,
                 datagram_codec: Callable[[ListenerConfig], Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.description = description
        self._stream = stream_codec
        self._datagram = datagram_codec
        self.options = dict(options or {})
        self.transports = frozenset(
            t for t, f in (("tcp", stream_codec), ("udp", datagram_codec)) if f is not None
        )

    def default_listener(self, transport: str = "tcp") -> ListenerConfig:
        return ListenerConfig(driver=self.name, port=0, transport=transport, options=self.options)

    def stream_codec(self, listener: ListenerConfig) -> Any:
        assert self._stream is not None
        return self._stream(listener)

    def datagram_codec(self, listener: ListenerConfig) -> Any:
        assert self._datagram is not None
        return self._datagram(listener)

    def tcp_factory(self, context: DriverContext) -> DeviceFactory:
        return DeviceFactory(self, context)

    def udp_protocol(self, context: DriverContext) -> DeviceDatagramProtocol:
        return DeviceDatagramProtocol(self, context)

    def decode(self, data: bytes, now: datetime, transport: str = "tcp") -> list[Any]:
        """Events and ``Rejected`` actions for captured bytes, in order (for `waygps decode`)."""
        listener = self.default_listener(transport)
        if transport == "udp":
            actions: Iterable[Action] = self.datagram_codec(listener).receive_datagram(data, now)
        else:
            codec = self.stream_codec(listener)
            actions = list(codec.receive(data, now))
            # The capture is over: a codec may hold a last frame that had no terminator.
            finish = getattr(codec, "finish", None)
            if finish is not None:
                actions.extend(finish(now))
        out: list[Any] = []
        for action in actions:
            if isinstance(action, Store):
                out.extend(action.events)
            elif isinstance(action, (Rejected, Flagged, Close)):
                out.append(action)
        return out

    def _command_codec(self) -> Any:
        transport = "tcp" if self._stream is not None else "udp"
        listener = self.default_listener(transport)
        return self.stream_codec(listener) if transport == "tcp" else self.datagram_codec(listener)

    def check_command(self, command: Command) -> None:
        """Raise ``UnsupportedCommand`` (with the reason) when this driver would refuse ``command``.

        Encodes it once with a default listener's codec: what is checked is the command's form
        (a listener's own options, such as a Teltonika ``command_codec``, are checked when sent).
        """
        self._command_codec().encode_command(command, utc(0))

    def cuts_engine(self, command: Command) -> bool:
        return _cuts_engine(self._command_codec(), command)

    def __repr__(self) -> str:
        return f"<driver {self.name}>"


def accept_all(imei: str, listener: ListenerConfig) -> Deferred:
    return succeed(True)


__all__ = [
    "Alarm", "CodecDriver", "CommandAck", "DeviceDatagramProtocol", "DeviceFactory", "DeviceProtocol",
    "DriverContext", "Heartbeat", "Position", "UdpPeer", "accept_all", "escaped", "utc",
]
