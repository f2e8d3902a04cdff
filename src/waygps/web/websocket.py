"""The live feed: an Autobahn WebSocket endpoint fed by the event bus.

Messages follow the contract (``initial_state``, ``gps_update``,
``mobile_status``, ``command_status``, ``system_alert``, ``error``); they are
built in :mod:`waygps.web.feed_messages`. Only stored reports are published on
the bus, so a dashboard never shows a report that is not in MongoDB, and a
stored report older than the newest one already sent for its device (a
``+BUFF`` replay, a late datagram) never moves the map back.

Each message is encoded and framed once (:meth:`prepareMessage`) and the same
bytes go to every client that wants it. A client that reads too slowly gets
the latest ``gps_update`` per device instead of a growing backlog; one that
stays behind longer than ``slow_client_timeout``, or whose backlog of other
messages passes ``max_queue``, is closed with code :data:`CLOSE_TOO_SLOW`.
Admission (token, per-token and total limits, failed-handshake rate per
address) is decided during the handshake: a refused client never sees data.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict, deque
from datetime import datetime, timezone
from typing import Any, Iterable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from waygps import metrics
from waygps.config import TokenConfig, WebSocketConfig
from waygps.events import FeedReset, Position
from waygps.web.feed_limits import ConnectionCounts, HandshakeLimiter
from waygps.web.feed_messages import (
    EVERYONE,
    BadMessage,
    battery,
    encode,
    gps_update,
    message_for,
    parse_client_message,
    vehicle_summary,
)

__all__ = ["GpsFeedFactory", "GpsFeedProtocol", "find_token", "gps_update", "message_for", "vehicle_summary",
           "CLOSE_TOO_SLOW"]

log = Logger(namespace="waygps.websocket")

CLOSE_TOO_SLOW = 4001  # application close code: the client fell behind the feed
CLOSE_SHUTDOWN = 1000  # autobahn lets a server send 1000 or 3000-4999 only
_SENT = {kind: metrics.WEBSOCKET_MESSAGES.labels(kind) for kind in (
    "initial_state", "gps_update", "mobile_status", "command_status", "system_alert", "error")}


def find_token(tokens: Iterable[TokenConfig], presented: str) -> TokenConfig | None:
    digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest()
    match = None
    for token in tokens:
        if hmac.compare_digest(token.token_sha256, digest):
            match = token
    return match


def _accept_deflate(offers: list[Any]) -> Any:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@implementer(IPushProducer)
class _Flow:
    """Tells the protocol when the socket's write buffer is full or drained."""

    def __init__(self, protocol: "GpsFeedProtocol") -> None:
        self.protocol = protocol

    def pauseProducing(self) -> None:
        self.protocol.fell_behind()

    def resumeProducing(self) -> None:
        self.protocol.caught_up()

    def stopProducing(self) -> None:
        self.protocol.paused = True


class GpsFeedProtocol(WebSocketServerProtocol):
    factory: "GpsFeedFactory"

    def __init__(self) -> None:
        super().__init__()
        self.scope: TokenConfig | None = None
        self.subscriptions: set[str] = set()
        self.paused = False
        self.ready = False  # initial_state sent: live messages may follow
        self.gone = False  # being closed by us: offer nothing more
        self.admitted = False
        self.latest: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self.backlog: deque[tuple[str, Any]] = deque()
        self._slow_call: Any = None

    # --- handshake ------------------------------------------------------------
    def _host(self) -> str:
        peer = self.transport.getPeer() if self.transport is not None else None
        return str(getattr(peer, "host", "?"))

    def onConnect(self, request: Any) -> None:
        factory = self.factory
        host = self._host()
        now = factory.reactor.seconds()
        if factory.limiter.blocked(host, now):
            factory.refused("rate_limited")
            raise ConnectionDeny(429, "too many failed handshakes; try again later")
        presented = ""
        if request.params.get("token"):
            presented = request.params["token"][0]
        else:
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                presented = header[7:].strip()
        if not presented:
            factory.limiter.failed(host, now)
            factory.refused("no_token")
            log.info("websocket {peer}: refused, no token", peer=host)
            raise ConnectionDeny(401, "token required")
        scope = find_token(factory.config.tokens, presented)
        if scope is None:
            factory.limiter.failed(host, now)
            factory.refused("invalid_token")
            log.info("websocket {peer}: refused, unknown token", peer=host)
            raise ConnectionDeny(403, "invalid token")
        refusal = factory.counts.refusal(scope.token_sha256)
        if refusal is not None:
            factory.refused(refusal)
            log.info("websocket {peer}: refused ({why})", peer=host, why=refusal)
            if refusal == "token_limit":
                raise ConnectionDeny(429, "too many connections with this token")
            raise ConnectionDeny(503, "too many clients")
        factory.counts.add(scope.token_sha256)
        self.admitted = True
        self.scope = scope
        return None

    def onOpen(self) -> None:
        flow = _Flow(self)
        try:
            self.transport.registerProducer(flow, True)
        except RuntimeError:
            # twisted.web's channel registered itself while it was speaking HTTP.
            self.transport.unregisterProducer()
            self.transport.registerProducer(flow, True)
        self.factory.clients.add(self)
        self.factory.index(self)
        metrics.WEBSOCKET_CLIENTS.set(len(self.factory.clients))
        self.start_over()

    def start_over(self) -> None:
        """Drop what is queued and send ``initial_state`` again; live messages follow it."""
        self.ready = False
        self.latest.clear()
        self.backlog.clear()
        d = self.factory.initial_state(self.scope)
        d.addCallback(self._initial_state)
        d.addErrback(self._initial_state_failed)

    def _initial_state(self, mobiles: list[dict[str, Any]]) -> None:
        if self.gone or self.state != self.STATE_OPEN:
            return
        self.send({"type": "initial_state", "mobiles": mobiles})
        self.ready = True
        self.drain()

    def _initial_state_failed(self, failure: Any) -> None:
        log.failure("websocket: initial state failed", failure)
        if self.gone or self.state != self.STATE_OPEN:
            return
        self.send({"type": "error", "message": "initial state unavailable"})
        self.ready = True
        self.drain()

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.forget(self)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self._cancel_slow()
        self.factory.forget(self)
        if self.admitted:
            self.admitted = False
            assert self.scope is not None
            self.factory.counts.remove(self.scope.token_sha256)

    # --- autobahn hooks for limits ------------------------------------------------
    def onAutoPingTimeout(self) -> None:
        metrics.WEBSOCKET_DROPPED.labels("ping_timeout").inc()
        log.info("websocket {peer}: no pong in time; dropped", peer=self._host())
        super().onAutoPingTimeout()

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        metrics.WEBSOCKET_DROPPED.labels("message_too_big").inc()
        log.info("websocket {peer}: message of {size} bytes over the limit {limit}; closing", peer=self._host(),
                 size=msg_size, limit=max_msg_size)
        super()._max_message_size_exceeded(msg_size, max_msg_size, reason)

    # --- client messages ------------------------------------------------------------
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        parsed = parse_client_message(payload, isBinary)
        if isinstance(parsed, BadMessage):
            metrics.WEBSOCKET_BAD_MESSAGES.labels(parsed.reason).inc()
            log.info("websocket {peer}: bad message ({why})", peer=self._host(), why=parsed.reason)
            self.send({"type": "error", "message": parsed.message})
            return
        imei = parsed.mobile_id
        if parsed.kind == "subscribe_mobile":
            assert self.scope is not None
            if not self.scope.allows(imei):
                metrics.WEBSOCKET_BAD_MESSAGES.labels("out_of_scope").inc()
                self.send({"type": "error", "message": f"mobile {imei} is not in this token's scope"})
                return
            self.subscriptions.add(imei)
        else:
            self.subscriptions.discard(imei)
        self.factory.index(self)

    # --- live messages ----------------------------------------------------------------
    def wants(self, imei: str) -> bool:
        if imei == EVERYONE:
            return True
        if self.scope is None or not self.scope.allows(imei):
            return False
        return not self.subscriptions or imei in self.subscriptions

    def offer(self, imei: str, kind: str, prepared: Any) -> None:
        """Send ``prepared`` now, or keep it: the latest per device for ``gps_update``, in order otherwise."""
        if self.gone:
            return
        if self.ready and not self.paused and not self.latest and not self.backlog:
            self._send_prepared(kind, prepared)
            return
        if kind == "gps_update":
            if imei in self.latest:
                metrics.WEBSOCKET_COALESCED.inc()
            self.latest[imei] = (kind, prepared)
            self.latest.move_to_end(imei)
            return
        if len(self.backlog) >= self.factory.config.max_queue:
            self.too_slow(f"more than {self.factory.config.max_queue} messages waiting")
            return
        self.backlog.append((kind, prepared))

    def drain(self) -> None:
        while self.ready and not self.paused and not self.gone and (self.backlog or self.latest):
            if self.backlog:
                kind, prepared = self.backlog.popleft()
            else:
                _, (kind, prepared) = self.latest.popitem(last=False)
            self._send_prepared(kind, prepared)

    def fell_behind(self) -> None:
        self.paused = True
        if self._slow_call is None and not self.gone:
            self._slow_call = self.factory.reactor.callLater(
                self.factory.config.slow_client_timeout, self._still_behind)

    def caught_up(self) -> None:
        self.paused = False
        self._cancel_slow()
        self.drain()

    def _still_behind(self) -> None:
        self._slow_call = None
        if self.paused:
            self.too_slow(f"not reading for {self.factory.config.slow_client_timeout:g}s")

    def _cancel_slow(self) -> None:
        if self._slow_call is not None and self._slow_call.active():
            self._slow_call.cancel()
        self._slow_call = None

    def too_slow(self, why: str) -> None:
        if self.gone:
            return
        self.gone = True
        self._cancel_slow()
        self.latest.clear()
        self.backlog.clear()
        metrics.WEBSOCKET_DROPPED.labels("too_slow").inc()
        log.info("websocket {peer}: too slow ({why}); closing with {code}", peer=self._host(), why=why,
                 code=CLOSE_TOO_SLOW)
        self.sendClose(CLOSE_TOO_SLOW, "too slow: fell behind the feed")

    def send(self, message: dict[str, Any]) -> None:
        """Send one message built for this client only (initial state, errors)."""
        if self.state != self.STATE_OPEN:
            return
        kind = message["type"]
        self.sendMessage(encode(message), isBinary=False)
        counter = _SENT.get(kind)
        if counter is not None:
            counter.inc()

    def _send_prepared(self, kind: str, prepared: Any) -> None:
        if self.state != self.STATE_OPEN:
            return
        self.sendPreparedMessage(prepared)
        counter = _SENT.get(kind)
        if counter is not None:
            counter.inc()


class GpsFeedFactory(WebSocketServerFactory):
    protocol = GpsFeedProtocol

    def __init__(self, config: WebSocketConfig, store: Any, publisher: Any, reactor: Any = None) -> None:
        super().__init__(reactor=reactor)
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.config = config
        self.store = store
        self.clients: set[GpsFeedProtocol] = set()
        # Who gets a device's messages, without asking every client: those subscribed to it,
        # and those with no subscription (every device of their scope).
        self.watching: dict[str, set[GpsFeedProtocol]] = {}
        self.unsubscribed: set[GpsFeedProtocol] = set()
        self._indexed: dict[GpsFeedProtocol, frozenset[str]] = {}
        self.limiter = HandshakeLimiter(config.failed_handshakes_per_minute, 60.0)
        self.counts = ConnectionCounts(config.max_clients, config.max_connections_per_token)
        self.newest: dict[str, datetime] = {}  # per device: the fix time of the newest gps_update sent
        self.battery: dict[str, Any] = {}  # per device: the last battery level seen (Veiculo has none)
        options: dict[str, Any] = {
            "maxMessagePayloadSize": config.max_message_bytes,
            "maxFramePayloadSize": config.max_message_bytes,
            "openHandshakeTimeout": config.handshake_timeout,
            "closeHandshakeTimeout": 5.0,
            "failByDrop": False,  # say why (1009 message too big...) before closing
        }
        if config.ping_interval > 0:
            options["autoPingInterval"] = config.ping_interval
            options["autoPingTimeout"] = config.ping_timeout or config.ping_interval
            # Only a pong answers a ping (autobahn's default also counts any frame as one).
            options["autoPingRestartOnAnyTraffic"] = False
        if config.compression:
            options["perMessageCompressionAccept"] = _accept_deflate
        self.setProtocolOptions(**options)
        self._unsubscribe = publisher.subscribe(self.publish)

    def index(self, client: GpsFeedProtocol) -> None:
        """Bring :attr:`watching` / :attr:`unsubscribed` up to date with ``client.subscriptions``."""
        self._unindex(client)
        if client not in self.clients:
            return
        subscriptions = frozenset(client.subscriptions)
        self._indexed[client] = subscriptions
        if not subscriptions:
            self.unsubscribed.add(client)
        for imei in subscriptions:
            self.watching.setdefault(imei, set()).add(client)

    def _unindex(self, client: GpsFeedProtocol) -> None:
        self.unsubscribed.discard(client)
        for imei in self._indexed.pop(client, frozenset()):
            watchers = self.watching.get(imei)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del self.watching[imei]

    def forget(self, client: GpsFeedProtocol) -> None:
        self.clients.discard(client)
        self._unindex(client)
        metrics.WEBSOCKET_CLIENTS.set(len(self.clients))

    def refused(self, reason: str) -> None:
        metrics.WEBSOCKET_REFUSED.labels(reason).inc()

    def publish(self, event: Any) -> None:
        if isinstance(event, FeedReset):
            # The feed may have missed events (docs/scaling.md): every client starts over.
            for client in list(self.clients):
                client.start_over()
            return
        if isinstance(event, Position) and not self._fresh(event):
            return
        if not self.clients:
            return  # nobody to build a message for (the usual case between dashboards)
        found = message_for(event)
        if found is None:
            return
        imei, message = found
        if imei == EVERYONE:
            candidates: Iterable[GpsFeedProtocol] = self.clients
        else:
            candidates = list(self.unsubscribed) + list(self.watching.get(imei, ()))
        clients = [client for client in candidates if client.wants(imei)]
        if not clients:
            return
        prepared = self.prepareMessage(encode(message), isBinary=False)
        kind = message["type"]
        for client in clients:
            client.offer(imei, kind, prepared)

    def _fresh(self, position: Position) -> bool:
        """False for a report older than the newest one already sent for its device (it is stored, not shown)."""
        if not (position.valid and position.has_coordinates):
            return True  # not a gps_update anyway
        newest = self.newest.get(position.imei)
        if newest is not None and position.device_time < newest:
            metrics.WEBSOCKET_STALE.inc()
            log.debug("websocket: {imei} report of {time} older than {newest}; not sent", imei=position.imei,
                      time=position.device_time, newest=newest)
            return False
        self.newest[position.imei] = position.device_time
        level = battery(position.attributes)
        if level is not None:
            self.battery[position.imei] = level
        return True

    def initial_state(self, scope: TokenConfig | None) -> Any:
        query: dict[str, Any] = {}
        if scope is not None and scope.devices is not None:
            query = {"IMEI": {"$in": sorted(scope.devices)}}
        d = self.store.collection("vehicles").find(query)
        d.addCallback(self._summaries)
        return d

    def _summaries(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mobiles = []
        for doc in docs:
            imei = doc.get("IMEI")
            fix = _utc(doc.get("dataDevice"))
            if isinstance(imei, str) and fix is not None:
                # The map now shows this fix: an older report must not move it back.
                newest = self.newest.get(imei)
                if newest is None or fix > newest:
                    self.newest[imei] = fix
            mobiles.append(vehicle_summary(doc, self.battery.get(imei) if isinstance(imei, str) else None))
        return mobiles

    def close(self) -> None:
        self._unsubscribe()
        for client in list(self.clients):
            client.gone = True
            client.sendClose(CLOSE_SHUTDOWN, "server shutting down")
