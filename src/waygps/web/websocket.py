"""The live feed: an Autobahn WebSocket endpoint fed by the event bus.

Messages follow the contract (``initial_state``, ``gps_update``,
``mobile_status``, ``command_status``, ``system_alert``, ``error``). Only
stored reports are published on the bus, so a dashboard never shows a report
that is not in MongoDB. A client that reads too slowly gets the latest update
per device instead of a growing backlog.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict, deque
from datetime import datetime
from typing import Any, Iterable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from waygps import metrics
from waygps.config import TokenConfig, WebSocketConfig
from waygps.events import Alarm, CommandStatus, DeviceConnected, DeviceDisconnected, FeedReset, Position

log = Logger(namespace="waygps.websocket")

BATTERY_KEYS = ("battery_percent", "battery_level", "battery")


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _battery(attributes: Any) -> Any:
    for key in BATTERY_KEYS:
        if key in attributes:
            return attributes[key]
    return None


def gps_update(position: Position) -> dict[str, Any]:
    return {
        "type": "gps_update",
        "mobile_id": position.imei,
        "data": {
            "latitud": position.latitude,
            "longitud": position.longitude,
            "velocidad": position.speed,
            "rumbo": position.course,
            "altitud": position.altitude,
            "ignicion": position.ignition,
            "bateria": _battery(position.attributes),
            "fecha_gps": _iso(position.device_time),
            "evento": position.event,
            "valido": position.valid,
        },
    }


def message_for(event: Any) -> tuple[str, dict[str, Any]] | None:
    """(imei, message) for a bus event a dashboard cares about, else ``None``."""
    if isinstance(event, Position):
        # A report without a fix (or flagged by the quality checks) must not move the map.
        if not (event.valid and event.has_coordinates):
            return None
        return event.imei, gps_update(event)
    if isinstance(event, DeviceConnected):
        return event.imei, {"type": "mobile_status", "mobile_id": event.imei, "status": "conectado"}
    if isinstance(event, DeviceDisconnected):
        return event.imei, {"type": "mobile_status", "mobile_id": event.imei, "status": "desconectado"}
    if isinstance(event, CommandStatus):
        return event.imei, {"type": "command_status", "mobile_id": event.imei, "command_id": event.command_id,
                            "command_type": event.command_type, "status": event.status, "reason": event.reason}
    if isinstance(event, Alarm):
        return event.imei, {"type": "system_alert", "mobile_id": event.imei, "alert_type": event.alarm,
                            "message": event.message or event.alarm}
    return None


def vehicle_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "mobile_id": doc.get("IMEI"),
        "patente": doc.get("ds_placa"),
        "ultimo_lat": doc.get("latitude"),
        "ultimo_lon": doc.get("longitude"),
        "velocidad": doc.get("speed"),
        "rumbo": doc.get("course"),
        "ignicion": doc.get("ignicao"),
        "online": bool(doc.get("online")),
        "fecha_gps": _iso(doc.get("dataDevice")),
    }


def find_token(tokens: Iterable[TokenConfig], presented: str) -> TokenConfig | None:
    digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest()
    match = None
    for token in tokens:
        if hmac.compare_digest(token.token_sha256, digest):
            match = token
    return match


@implementer(IPushProducer)
class _Flow:
    """Tells the protocol when the socket's write buffer is full or drained."""

    def __init__(self, protocol: "GpsFeedProtocol") -> None:
        self.protocol = protocol

    def pauseProducing(self) -> None:
        self.protocol.paused = True

    def resumeProducing(self) -> None:
        self.protocol.paused = False
        self.protocol.drain()

    def stopProducing(self) -> None:
        self.protocol.paused = True


class GpsFeedProtocol(WebSocketServerProtocol):
    factory: "GpsFeedFactory"

    def __init__(self) -> None:
        super().__init__()
        self.scope: TokenConfig | None = None
        self.subscriptions: set[str] = set()
        self.paused = False
        self.latest: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.backlog: deque[dict[str, Any]] = deque()
        self.dropped = 0

    def onConnect(self, request: Any) -> None:
        presented = ""
        if request.params.get("token"):
            presented = request.params["token"][0]
        else:
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                presented = header[7:].strip()
        if not presented:
            log.info("websocket {peer}: refused, no token", peer=request.peer)
            raise ConnectionDeny(401, "token required")
        scope = find_token(self.factory.config.tokens, presented)
        if scope is None:
            log.info("websocket {peer}: refused, unknown token", peer=request.peer)
            raise ConnectionDeny(403, "invalid token")
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
        metrics.WEBSOCKET_CLIENTS.set(len(self.factory.clients))
        d = self.factory.initial_state(self.scope)
        d.addCallback(lambda mobiles: self.send({"type": "initial_state", "mobiles": mobiles}))
        d.addErrback(lambda f: (log.failure("websocket: initial state failed", f),
                                self.send({"type": "error", "message": "initial state unavailable"})))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.clients.discard(self)
        metrics.WEBSOCKET_CLIENTS.set(len(self.factory.clients))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            message = json.loads(payload)
            kind = message["type"]
            imei = str(message.get("mobile_id", ""))
        except (ValueError, KeyError, TypeError):
            self.send({"type": "error", "message": "expected a JSON object with a type"})
            return
        if kind not in ("subscribe_mobile", "unsubscribe_mobile"):
            self.send({"type": "error", "message": f"unknown message type {kind!r}"})
            return
        if not imei:
            self.send({"type": "error", "message": "mobile_id required"})
            return
        if kind == "subscribe_mobile":
            assert self.scope is not None
            if not self.scope.allows(imei):
                self.send({"type": "error", "message": f"mobile {imei} is not in this token's scope"})
                return
            self.subscriptions.add(imei)
        else:
            self.subscriptions.discard(imei)

    def wants(self, imei: str) -> bool:
        if self.scope is None or not self.scope.allows(imei):
            return False
        return not self.subscriptions or imei in self.subscriptions

    def offer(self, imei: str, message: dict[str, Any]) -> None:
        if not self.paused and not self.latest and not self.backlog:
            self.send(message)
        elif message["type"] == "gps_update":
            self.latest[imei] = message
            self.latest.move_to_end(imei)
        else:
            if len(self.backlog) >= self.factory.config.max_queue:
                self.backlog.popleft()
                self.dropped += 1
            self.backlog.append(message)

    def drain(self) -> None:
        while not self.paused and (self.backlog or self.latest):
            if self.backlog:
                self.send(self.backlog.popleft())
            else:
                _, message = self.latest.popitem(last=False)
                self.send(message)

    def send(self, message: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(message, separators=(",", ":")).encode("utf-8"), isBinary=False)


class GpsFeedFactory(WebSocketServerFactory):
    protocol = GpsFeedProtocol

    def __init__(self, config: WebSocketConfig, store: Any, publisher: Any) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.clients: set[GpsFeedProtocol] = set()
        self._unsubscribe = publisher.subscribe(self.publish)

    def publish(self, event: Any) -> None:
        if isinstance(event, FeedReset):
            # The feed may have missed events (docs/scaling.md): every client starts over.
            for client in list(self.clients):
                client.latest.clear()
                client.backlog.clear()
                d = self.initial_state(client.scope)
                d.addCallback(lambda mobiles, c=client: c.send({"type": "initial_state", "mobiles": mobiles}))
                d.addErrback(lambda f: log.failure("websocket: initial state failed", f))
            return
        found = message_for(event)
        if found is None:
            return
        imei, message = found
        for client in list(self.clients):
            if client.wants(imei):
                client.offer(imei, message)

    def initial_state(self, scope: TokenConfig | None) -> Any:
        query: dict[str, Any] = {}
        if scope is not None and scope.devices is not None:
            query = {"IMEI": {"$in": sorted(scope.devices)}}
        d = self.store.collection("vehicles").find(query)
        d.addCallback(lambda docs: [vehicle_summary(doc) for doc in docs])
        return d

    def close(self) -> None:
        self._unsubscribe()
        for client in list(self.clients):
            client.sendClose(1000, "server shutting down")
