"""The command service: intents and queued commands -> device connections -> acknowledgements.

It listens on the event publisher (device connected / disconnected, stored
positions, command acknowledgements) and polls MongoDB every
``poll_interval`` seconds. Every operation on one device runs under that
device's lock, so an acknowledgement, a disconnection and a delivery of the
same device never interleave inside this process; between instances the
conditional updates of :mod:`waygps.commands.queue` decide.
"""

from __future__ import annotations

import random
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import attrs

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, DeferredSemaphore, inlineCallbacks, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from waygps import metrics
from waygps.commands import checks, intents, policy
from waygps.commands.model import Command, UnsupportedCommand
from waygps.commands.queue import ANY_INTENT, INTENT_QUERIES, CommandQueue
from waygps.commands.record import (
    BLOCK_INTENT, CONFIRMED, EXPIRED, FAILED, FINAL, OPEN, PENDING, SENT, SERVER_INTENT, InvalidCommand, frame_text,
    normalize, server_text,
)
from waygps.config import CommandsConfig
from waygps.events import CommandAck, CommandStatus, DeviceConnected, DeviceDisconnected, Position

log = Logger(namespace="waygps.commands")

# Vehicles with intents read per page.
IMEI_CHUNK = 500
# Pending commands of one device looked at per check.
PER_DEVICE = 50
# Device operations (connect / disconnect bookkeeping, answers, delivery checks) in progress at once.
MAX_OPERATIONS = 32
# Connected devices screened for open commands per query (see CommandService._arrived).
SCREEN_BATCH = 1000
# Seconds between the polls that also look for malformed intents (see _sync_intents).
SWEEP_INTERVAL = 60.0


def generated_instance_id() -> str:
    """The host name, like the server's default: stable across restarts (see docs/commands.md)."""
    return socket.gethostname() or "waygps"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _moved(state: list[Any], event: Position) -> None:
    """Update ``state`` (``[speed, speed_at, ignition, ignition_at]``) in place with a report: a value
    is taken when it is not older than the one held (a replayed buffered report does not overwrite a
    newer speed). Its time is the fix time, but never later than its reception. (Runs for every stored
    report: a list updated in place, a ``Motion`` made only when a command asks.)"""
    at = event.device_time
    received = event.server_time
    if received < at:
        at = received
    value = event.speed
    if event.valid and value is not None:
        speed_at = state[1]
        if (speed_at is None or at >= speed_at) and (type(value) is float or _number(value) is not None):
            state[0], state[1] = float(value), at
    ignition = event.ignition
    if ignition is not None:
        ignition_at = state[3]
        if ignition_at is None or at >= ignition_at:
            state[2], state[3] = ignition, at


def _motion_of(state: list[Any] | None) -> policy.Motion | None:
    if state is None:
        return None
    return policy.Motion(speed=state[0], speed_at=state[1], ignition=state[2], ignition_at=state[3])


def _stored_motion(vehicle: Mapping[str, Any]) -> policy.Motion:
    """The last speed in ``Veiculo`` (after a restart): at its fix time, capped by ``lastSeen``."""
    at = vehicle.get("dataDevice")
    seen = vehicle.get("lastSeen")
    if isinstance(at, datetime) and isinstance(seen, datetime):
        at = min(at, seen)
    return policy.Motion(speed=_number(vehicle.get("speed")), speed_at=at if isinstance(at, datetime) else None)


def _cuts_engine(connection: Any, doc: Mapping[str, Any]) -> bool:
    """Ask the connection's driver whether ``doc`` cuts the engine (``block`` always does)."""
    if policy.cuts_by_type(doc):
        return True
    ask = getattr(connection, "cuts_engine", None)
    if ask is None:
        return False
    try:
        command = Command(id=str(doc.get("_id")), imei=str(doc.get("IMEI")), type=str(doc.get("type")),
                          params=normalize(doc.get("type"), doc.get("params")))
    except InvalidCommand:
        return False  # the plan fails it without sending
    try:
        return bool(ask(command))
    except Exception:
        log.failure("cuts_engine of {driver} raised; command {id} treated as an engine cut",
                    driver=getattr(connection, "protocol", "?"), id=doc.get("_id"))
        return True


STOP_GRACE = 5.0  # seconds stopService waits for operations in flight

class CommandService(Service):
    """Delivers ``Comando`` documents to devices connected to this instance and tracks them."""

    name = "commands"

    def __init__(self, store: Any, sessions: Any, publisher: Any, config: CommandsConfig, reactor: Any,
                 instance_id: str | None = None, rng: random.Random | None = None,
                 drivers: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.sessions = sessions
        self.publisher = publisher
        self.config = config
        self.reactor = reactor
        self.instance_id = instance_id or config.instance_id or generated_instance_id()
        self.rng = rng or random.Random()
        self.drivers = drivers  # None: the installed ones (commands.checks)
        self.queue: CommandQueue | None = None
        self._loop: LoopingCall | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # live movement of connected devices: [speed, speed_at, ignition, ignition_at] (see _moved)
        self._motion: dict[str, list[Any]] = {}
        self._watch: set[str] = set()  # devices with pending commands: checked on each report
        self._locks: dict[str, DeferredLock] = {}
        # A storm of connecting devices (a restart, a network coming back) queues here instead of
        # starting thousands of store queries at once (memory: docs/benchmarks.md, connections).
        self._operations = DeferredSemaphore(MAX_OPERATIONS)
        self._arrivals: dict[str, DeviceConnected] = {}  # connected, not yet screened (see _arrived)
        self._screening = False
        self._checking: set[str] = set()
        self._recheck: set[str] = set()
        self._work: set[Deferred] = set()
        self._polling: Deferred | None = None
        self._next_sweep = 0.0
        # Cluster (waygps.cluster.takeover): Deferred[bool], may this instance write to the device?
        self.holder: Callable[[str], Deferred] | None = None

    # --- lifecycle -----------------------------------------------------------
    def startService(self) -> Deferred:
        Service.startService(self)
        return self._start()

    @inlineCallbacks
    def _start(self) -> Any:
        self.queue = CommandQueue(self.store.collection("commands"), self.store.collection("vehicles"))
        yield self.queue.ensure_indexes()
        yield self._recover()
        self._unsubscribe = self.publisher.subscribe(self._on_event)
        self._loop = LoopingCall(self._poll)
        self._loop.clock = self.reactor
        self._polling = self._loop.start(self.config.poll_interval, now=True)
        self._polling.addErrback(lambda f: log.failure("command polling stopped", f))
        log.info("commands: instance {instance}, polling every {every:g} s", instance=self.instance_id,
                 every=self.config.poll_interval)

    def stopService(self) -> Deferred:
        Service.stopService(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._arrivals.clear()
        work = list(self._work)
        if not work:
            return succeed(None)
        # Operations in flight are idempotent status changes: wait a little for them, never for a
        # store that is gone (txmongo's own deadlines run to a minute).
        done: Deferred = Deferred()

        def finish(why: str | None) -> None:
            if done.called:
                return
            if why:
                log.warn("commands: stopping with {n} operation(s) unfinished ({why})", n=len(self._work), why=why)
            if timer.active():
                timer.cancel()
            done.callback(None)

        timer = self.reactor.callLater(STOP_GRACE, finish, f"no answer within {STOP_GRACE:g} s")
        DeferredList(work, consumeErrors=True).addBoth(lambda _: finish(None))
        return done

    @inlineCallbacks
    def idle(self) -> Any:
        """Fires once nothing is in progress (operations started meanwhile are waited for too)."""
        while self._work:
            yield DeferredList(list(self._work), consumeErrors=True)

    # --- events ----------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        if not self.running or self.queue is None:
            return
        if isinstance(event, Position):  # (the usual event: first)
            state = self._motion.get(event.imei)
            if state is None:
                state = self._motion[event.imei] = [None, None, None, None]
            _moved(state, event)
            if event.imei in self._watch:
                self.check(event.imei)
        elif isinstance(event, CommandAck):
            self._spawn(self._locked(event.imei, self._acked, event), self._after(event.imei))
        elif isinstance(event, DeviceConnected):
            self._arrived(event)
        elif isinstance(event, DeviceDisconnected):
            self._motion.pop(event.imei, None)
            self._watch.discard(event.imei)
            self._spawn(self._locked(event.imei, self._disconnected, event), self._after(event.imei))

    def _arrived(self, event: DeviceConnected) -> None:
        """A device connected: looked at (``_connected``, then its pending commands) only if it has an
        open command. Devices that connect while a screening query is out are screened together by
        the next one, so a storm of connections (a restart, a network coming back) costs a few
        queries, not two per device (docs/benchmarks.md, connections)."""
        self._arrivals[event.imei] = event
        if not self._screening:
            self._screening = True
            self._spawn(self._screen())

    @inlineCallbacks
    def _screen(self) -> Any:
        try:
            while self._arrivals and self.running and self.queue is not None:
                arrivals, self._arrivals = self._arrivals, {}
                imeis = list(arrivals)
                try:
                    busy: set[str] = set()
                    for start in range(0, len(imeis), SCREEN_BATCH):
                        busy.update((yield self.queue.with_open_commands(imeis[start:start + SCREEN_BATCH])))
                except Exception:
                    metrics.STORE_FAILURES.labels("commands").inc()
                    log.failure("commands: screening {count} connected devices failed; looking at each",
                                count=len(imeis))
                    busy = set(imeis)
                for imei, event in arrivals.items():
                    if imei in busy:
                        self._spawn(self._locked(imei, self._connected, event), self._after(imei))
        finally:
            self._screening = False

    def _after(self, imei: str) -> Callable[[Any], Any]:
        def then(result: Any) -> Any:
            if self.sessions.get(imei) is not None:
                self.check(imei)
            return result

        return then

    def check(self, imei: str) -> None:
        """Look at ``imei``'s pending commands now (coalesced: one check at a time per device)."""
        if not self.running or self.queue is None:
            return
        if imei in self._checking:
            self._recheck.add(imei)
            return
        self._checking.add(imei)

        def done(result: Any) -> Any:
            self._checking.discard(imei)
            if imei in self._recheck:
                self._recheck.discard(imei)
                self.check(imei)
            return result

        self._spawn(self._locked(imei, self._check, imei), done)

    # --- plumbing ----------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    def _locked(self, imei: str, fn: Callable[..., Any], *args: Any) -> Deferred:
        """``fn(*args)`` alone for ``imei``, and with at most ``MAX_OPERATIONS`` others of any device."""
        lock = self._locks.get(imei)
        if lock is None:
            lock = self._locks[imei] = DeferredLock()

        def release(result: Any) -> Any:
            if not lock.locked and not lock.waiting and self._locks.get(imei) is lock:
                del self._locks[imei]
            return result

        return lock.run(self._operations.run, fn, *args).addBoth(release)

    def _spawn(self, d: Deferred, then: Callable[[Any], Any] | None = None) -> Deferred:
        self._work.add(d)

        def settled(result: Any) -> None:
            self._work.discard(d)
            if isinstance(result, Failure):
                metrics.STORE_FAILURES.labels("commands").inc()
                log.failure("commands: operation failed", result)

        if then is not None:
            d.addBoth(then)
        d.addBoth(settled)
        return d

    def _changed(self, doc: Mapping[str, Any], status: str, reason: str) -> None:
        """Log, count and publish one status change."""
        metrics.COMMANDS.labels(status).inc()
        command_id = str(doc.get("_id"))
        imei = str(doc.get("IMEI"))
        command_type = str(doc.get("type"))
        level = log.warn if status in (FAILED, EXPIRED) else log.info
        level("{driver} {imei} {peer}: command {id} {type} -> {status}: {reason}",
              driver=doc.get("protocol") or self._driver(imei), imei=imei, peer=doc.get("peer") or "-",
              id=command_id, type=command_type, status=status, reason=reason)
        self.publisher.publish(CommandStatus(command_id=command_id, imei=imei, command_type=command_type,
                                             status=status, reason=reason, time=self._now()))

    def _driver(self, imei: str) -> str:
        connection = self.sessions.get(imei)
        return getattr(connection, "protocol", None) or "-"

    # --- closing a command ----------------------------------------------------
    @inlineCallbacks
    def _close(self, doc: Mapping[str, Any], leaving: tuple[str, ...], status: str, reason: str,
               fields: Mapping[str, Any] | None = None) -> Any:
        """Move ``doc`` to a final status; the vehicle's intent is settled first (see docs/commands.md)."""
        assert self.queue is not None
        now = self._now()
        if status == CONFIRMED:
            yield self._confirmed_vehicle(doc)
        else:
            intent = doc.get("intent") or {}
            if intent.get("field") in (BLOCK_INTENT, SERVER_INTENT):
                yield self.queue.clear_intent(doc["IMEI"], intent["field"], intent.get("value"))
        values = dict(fields or {})
        if status != CONFIRMED:
            values.setdefault("error", reason)
        moved = yield self.queue.move(doc["_id"], leaving, status, now, reason, set_fields=values)
        if moved is not None:
            self._changed(moved, status, reason)
        return moved

    @inlineCallbacks
    def _confirmed_vehicle(self, doc: Mapping[str, Any]) -> Any:
        assert self.queue is not None
        imei = doc["IMEI"]
        kind = doc.get("type")
        if kind in ("block", "unblock"):
            blocked = kind == "block"
            yield self.queue.set_blocked(imei, blocked)
            yield self.queue.clear_intent(imei, BLOCK_INTENT, blocked)
        elif kind == "set_server":
            values = {server_text(doc.get("params") or {})}
            intent = doc.get("intent") or {}
            if intent.get("field") == SERVER_INTENT:
                values.add(intent.get("value"))
            for value in values:
                yield self.queue.clear_intent(imei, SERVER_INTENT, value)

    @inlineCallbacks
    def _lost(self, doc: Mapping[str, Any], why: str, link: bool = False) -> Any:
        """A ``sent`` command will get no acknowledgement: back to pending, or failed / expired."""
        assert self.queue is not None
        now = self._now()
        free = link and policy.link_lost_is_free(doc)
        status, reason = policy.after_lost_ack(doc, now, self.config, why, attempt_counts=not free)
        if status == PENDING:
            moved = yield self.queue.move(doc["_id"], (SENT,), PENDING, now, reason,
                                          match={"attempts": doc.get("attempts")},
                                          inc={"attempts": -1, "linkLosses": 1} if free else None)
            if moved is not None:
                self._changed(moved, PENDING, reason)
            return moved
        return (yield self._close(doc, (SENT,), status, reason))

    # --- startup -----------------------------------------------------------------
    @inlineCallbacks
    def _recover(self) -> Any:
        """Commands this instance had ``sent`` before a restart: their connection is gone."""
        assert self.queue is not None
        while True:
            docs = yield self.queue.sent({"instance": self.instance_id})
            if not docs:
                return
            moved = 0
            for doc in docs:
                result = yield self._lost(doc, "WayGPS restarted before the device acknowledged", link=True)
                moved += result is not None
            if not moved:
                return

    # --- device events -----------------------------------------------------------
    @inlineCallbacks
    def _connected(self, event: DeviceConnected) -> Any:
        """A new connection replaces an older one: what was sent on the old one is lost."""
        assert self.queue is not None
        docs = yield self.queue.sent_to(event.imei)
        for doc in docs:
            if doc.get("instance") != self.instance_id or doc.get("peer") == event.peer:
                continue
            yield self._lost(doc, f"connection {doc.get('peer')} replaced by {event.peer} before the device "
                                  f"acknowledged", link=True)

    @inlineCallbacks
    def _disconnected(self, event: DeviceDisconnected) -> Any:
        assert self.queue is not None
        current = self.sessions.get(event.imei)
        docs = yield self.queue.sent_to(event.imei)
        for doc in docs:
            if doc.get("instance") != self.instance_id or (current is not None and doc.get("peer") == current.peer):
                continue
            yield self._lost(doc, f"connection {event.peer} closed before the device acknowledged "
                                  f"({event.reason})", link=True)

    @inlineCallbacks
    def _acked(self, ack: CommandAck) -> Any:
        assert self.queue is not None
        candidates = yield self.queue.match_ack(ack.imei, ack.command_id, ack.serial, self.instance_id)
        doc = next((d for d in candidates if policy.ack_fits(d, ack.command_type)), None)
        where = dict(driver=ack.protocol, imei=ack.imei, peer=self._peer(ack.imei))
        if doc is None:
            metrics.COMMANDS.labels("ack_unmatched").inc()
            log.warn("{driver} {imei} {peer}: answer matches no open command (id {id}, serial {serial}, "
                     "type {type}): {response}", id=ack.command_id, serial=ack.serial, type=ack.command_type,
                     response=ack.response, **where)
            return None
        if doc.get("status") in FINAL:
            metrics.COMMANDS.labels("ack_late").inc()
            log.info("{driver} {imei} {peer}: answer for command {id}, already {status}; ignored: {response}",
                     id=doc["_id"], status=doc.get("status"), response=ack.response, **where)
            return None
        status, reason = policy.ack_outcome(doc, ack.success, ack.response)
        fields: dict[str, Any] = {"response": ack.response}
        if status == CONFIRMED:
            fields["confirmedAt"] = self._now()
            fields["error"] = None
        return (yield self._close(doc, OPEN, status, reason, fields))

    def _peer(self, imei: str) -> str:
        connection = self.sessions.get(imei)
        return getattr(connection, "peer", None) or "-"

    # --- delivery ----------------------------------------------------------------
    @inlineCallbacks
    def _check(self, imei: str) -> Any:
        assert self.queue is not None
        connection = self.sessions.get(imei)
        if connection is None:
            self._watch.discard(imei)
            return
        if self.holder is not None and not (yield self.holder(imei)):
            return  # the store names another instance as the holder: it writes the commands
        if (yield self.queue.in_flight(imei)) is not None:
            return  # one command at a time; its answer or timeout triggers the next
        pending = yield self.queue.pending_for(imei, limit=PER_DEVICE)
        if not pending:
            self._watch.discard(imei)
            return
        cuts: dict[Any, bool] = {}

        def cuts_engine(doc: Mapping[str, Any]) -> bool:
            if doc["_id"] not in cuts:
                cuts[doc["_id"]] = _cuts_engine(connection, doc)
            return cuts[doc["_id"]]

        motion = _motion_of(self._motion.get(imei))
        if (motion is None or motion.speed_at is None) and any(cuts_engine(d) for d in pending):
            stored = _stored_motion((yield self.queue.vehicle(imei)) or {})
            motion = stored if motion is None else attrs.evolve(motion, speed=stored.speed, speed_at=stored.speed_at)
        now = self._now()
        still_pending = False
        for decision in policy.plan(pending, now, motion, self.config, cuts_engine):
            doc = decision.doc
            if isinstance(decision, policy.Finish):
                yield self._close(doc, (PENDING,), decision.status, decision.reason)
            elif isinstance(decision, policy.Wait):
                still_pending = True
                if doc.get("waiting") != decision.reason:
                    new_kind = doc.get("waitingFor") != decision.kind
                    yield self.queue.set_waiting(doc, now, decision.reason, decision.kind, new_kind)
                    if new_kind:
                        log.info("{driver} {imei} {peer}: command {id} {type} waits: {reason}",
                                 driver=connection.protocol, imei=imei, peer=connection.peer, id=doc["_id"],
                                 type=doc.get("type"), reason=decision.reason)
            elif isinstance(decision, policy.Queue):
                still_pending = True
                if doc.get("waiting"):
                    yield self.queue.clear_waiting(doc)
            elif isinstance(decision, policy.Send):
                note = ""
                if cuts_engine(doc) and policy.forced_past_unknown(doc, motion, now, self.config):
                    why = policy.speed_guard(motion or policy.Motion(), now, self.config.block_max_speed_kmh,
                                             self.config.block_speed_max_age)
                    note = f"; speed guard overridden by the operator (force): {why}"
                    log.warn("{driver} {imei} {peer}: command {id} {type}: speed guard OVERRIDDEN by force: {why}",
                             driver=connection.protocol, imei=imei, peer=connection.peer, id=doc["_id"],
                             type=doc.get("type"), why=why)
                yield self._deliver(doc, connection, note)
        if still_pending:
            self._watch.add(imei)
        else:
            self._watch.discard(imei)

    @inlineCallbacks
    def _deliver(self, doc: Mapping[str, Any], connection: Any, note: str = "") -> Any:
        assert self.queue is not None
        imei = doc["IMEI"]
        used = yield self.queue.recent_serials(imei)
        serial = policy.pick_serial(used, self.rng)
        attempt = int(doc.get("attempts") or 0) + 1
        reason = (f"written to {connection.protocol} {connection.transport_name} connection {connection.peer} "
                  f"(attempt {attempt} of {self.config.max_attempts}, serial {serial}){note}")
        claimed = yield self.queue.claim(doc, self._now(), self.instance_id, serial, connection, reason)
        if claimed is None:
            return  # another instance, or an expiry, moved it first
        if self.sessions.get(imei) is not connection:
            undo = "device disconnected before the command could be written"
            moved = yield self.queue.move(claimed["_id"], (SENT,), PENDING, self._now(), undo,
                                          inc={"attempts": -1}, match={"attempts": claimed["attempts"]})
            if moved is not None:
                self._changed(moved, PENDING, undo)
            return
        command = Command(id=str(claimed["_id"]), imei=imei, type=claimed["type"],
                          params=normalize(claimed["type"], claimed.get("params")), serial=serial)
        try:
            data = connection.send_command(command)
        except UnsupportedCommand as e:
            yield self._close(claimed, (SENT,), FAILED,
                              f"not written: not supported by the {connection.protocol} driver: {e}")
            return
        except Exception as e:
            log.failure("{driver} {imei} {peer}: encoding command {id} failed", driver=connection.protocol,
                        imei=imei, peer=connection.peer, id=claimed["_id"])
            yield self._close(claimed, (SENT,), FAILED,
                              f"not written: the {connection.protocol} driver could not encode it: {e}")
            return
        self._changed(claimed, SENT, reason)
        yield self.queue.record_frame(claimed["_id"], frame_text(bytes(data or b"")))
        answers = getattr(connection, "expects_answer", None)
        if answers is not None and not answers(command):
            # The device never acknowledges this command (Teltonika cpureset): waiting would only
            # send it again, so writing it is as confirmed as it gets.
            yield self._close(claimed, (SENT,), CONFIRMED,
                              f"written; the {connection.protocol} device does not acknowledge {claimed['type']}")

    # --- polling -----------------------------------------------------------------
    def _poll(self) -> Deferred:
        d = self._tick()
        self._spawn(d)
        # The loop never stops on an error: the next tick tries again.
        return d.addErrback(lambda _: None)

    @inlineCallbacks
    def _tick(self) -> Any:
        assert self.queue is not None
        now = self._now()
        yield self._complete_inserted(now)
        for doc in (yield self.queue.expired_pending(now)):
            yield self._locked(doc["IMEI"], self._close, doc, (PENDING,), EXPIRED,
                               f"not delivered before {doc['expiresAt']:%Y-%m-%d %H:%M:%S} UTC")
        overdue = yield self.queue.overdue(now, self.instance_id, self.config.ack_timeout,
                                           self.config.ack_timeout * policy.ABANDONED_FACTOR)
        for doc in overdue:
            if doc.get("instance") == self.instance_id:
                why = f"no acknowledgement within {self.config.ack_timeout:g} s"
            else:
                why = f"abandoned by instance {doc.get('instance')} (no decision within " \
                      f"{self.config.ack_timeout * policy.ABANDONED_FACTOR:g} s)"
            yield self._locked(doc["IMEI"], self._lost, doc, why).addBoth(self._after(doc["IMEI"]))
        yield self._sync_intents()
        yield self._deliver_pending()

    @inlineCallbacks
    def _complete_inserted(self, now: datetime) -> Any:
        """Commands inserted by hand without ``status`` / ``expiresAt`` join the queue; one the device's
        driver would refuse (an application's ``pending`` insert included) fails at once."""
        assert self.queue is not None
        for doc in (yield self.queue.unqueued()):
            vehicle = yield self.queue.vehicle(str(doc.get("IMEI")))
            why = checks.check_with_driver((vehicle or {}).get("protocol"), str(doc.get("IMEI")),
                                           doc.get("type"), doc.get("params"), self.drivers)
            if why is not None:
                refused = yield self.queue.complete(doc, now, f"inserted by hand; {why}")
                if refused is not None:
                    yield self._locked(str(doc.get("IMEI")), self._close, refused, (PENDING,), FAILED, why)
                continue
            if doc.get("status") is None:
                reason = "queued (inserted without a status)"
                completed = yield self.queue.complete(doc, now, reason)
                if completed is not None:
                    self._changed(completed, PENDING, reason)
            expires = policy.expires_at(doc, self.config) or now + timedelta(hours=self.config.expiry_hours)
            yield self.queue.set_expiry(doc["_id"], expires)

    @inlineCallbacks
    def _sync_intents(self) -> Any:
        """Page through the vehicles with an intent (a page at a time in memory).

        Each poll reads the indexed intent queries; every ``SWEEP_INTERVAL`` (and at the first
        poll) one sweep over any non-null intent also finds the malformed ones, to reject them.
        """
        assert self.queue is not None
        queries: tuple[Mapping[str, Any], ...] = INTENT_QUERIES
        if self.reactor.seconds() >= self._next_sweep:
            queries = (ANY_INTENT,)
            self._next_sweep = self.reactor.seconds() + SWEEP_INTERVAL
        for query in queries:
            after = None
            while True:
                page = yield self.queue.vehicles_with_intents(query, after, IMEI_CHUNK)
                if not page:
                    break
                after = page[-1]["_id"]
                yield self._sync_page(page)
                if len(page) < IMEI_CHUNK:
                    break

    @inlineCallbacks
    def _sync_page(self, vehicles: list[Mapping[str, Any]]) -> Any:
        assert self.queue is not None
        for vehicle in vehicles:
            if not isinstance(vehicle.get("IMEI"), str):
                continue
            open_docs = yield self.queue.open_for(vehicle["IMEI"])
            if intents.plan(vehicle, open_docs):
                yield self._locked(vehicle["IMEI"], self._sync_vehicle, vehicle["IMEI"])

    @inlineCallbacks
    def _sync_vehicle(self, imei: str) -> Any:
        """Plan again under the device's lock (the first look was unlocked) and apply."""
        assert self.queue is not None
        vehicle = yield self.queue.vehicle(imei)
        if vehicle is None:
            return
        open_docs = yield self.queue.open_for(imei)
        ops = [self._screened(vehicle, op) for op in intents.plan(vehicle, open_docs)]
        for op in ops:
            if isinstance(op, intents.Clear):
                log.info("{driver} {imei} {peer}: Veiculo.{field}={value} cleared: {reason}",
                         driver=self._driver(imei), imei=imei, peer=self._peer(imei), field=op.field,
                         value=op.value, reason=op.reason)
            elif isinstance(op, intents.Reject):
                metrics.COMMANDS.labels("intent_rejected").inc()
        yield intents.apply(self.queue, imei, ops, self._now(), self.config.expiry_hours, self._changed)
        if ops and self.sessions.get(imei) is not None:
            self.check(imei)

    def _screened(self, vehicle: Mapping[str, Any], op: intents.Op) -> intents.Op:
        """A command an intent asks for, refused at once when the device's driver would refuse it."""
        if not isinstance(op, intents.Create):
            return op
        why = checks.check_with_driver(vehicle.get("protocol"), vehicle["IMEI"], op.type, op.params, self.drivers)
        return op if why is None else intents.Reject(op.field, op.value, op.type, why)

    @inlineCallbacks
    def _deliver_pending(self) -> Any:
        assert self.queue is not None
        connected = {c.imei for c in self.sessions.connections() if getattr(c, "imei", None)}
        devices, total = yield self.queue.pending_devices(connected)
        for imei in sorted(devices):
            self.check(imei)
        metrics.COMMANDS_PENDING.set(total)
