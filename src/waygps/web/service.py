"""The HTTP port: the map page, WebSocket feed, /metrics, /health (one twisted.web site)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

log = Logger(namespace="waygps.web")


class WebService:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.config = server.config.websocket
        self.port: Any = None
        self.site: Any = None
        self.feed: Any = None

    def build(self) -> None:
        from autobahn.twisted.resource import WebSocketResource

        from waygps.web.api.resources import ApiResource
        from waygps.web.health import listening_check, store_check
        from waygps.web.map import MapPage, static_files
        from waygps.web.site import build_site
        from waygps.web.websocket import GpsFeedFactory

        server = self.server
        checks = [store_check(server.store)] + [
            listening_check(f"listener {l.listener.name}", lambda l=l: l.port) for l in server.listeners
        ]
        self.feed = GpsFeedFactory(self.config, server.store, getattr(server, "feed", server.bus), reactor=server.reactor)
        page = MapPage(server.config.map, self.config.path)
        extra = {self.config.path: WebSocketResource(self.feed), "map": page, "static": static_files(),
                 "api/v1": ApiResource(server.config, server.store, server.reactor)}
        self.site = build_site(checks, extra, reactor=server.reactor, index=page,
                               metrics_token=server.config.web.metrics_token)

    def start(self) -> Deferred:
        from waygps.service import StartupError

        self.build()
        try:
            self.port = self.server.reactor.listenTCP(self.config.port, self.site, interface=self.config.host)
        except CannotListenError as e:
            raise StartupError(f"websocket.port: cannot listen on {self.config.host}:{self.config.port}: "
                               f"{e.socketError}") from None
        host = self.config.host
        exposure = "loopback only; expose it through a TLS proxy, see docs/deployment.md" \
            if host in ("127.0.0.1", "::1", "localhost") else "EXPOSED to the network as plain HTTP and ws://"
        log.info("web: listening on {host}:{port} ({exposure}): the map at /, WebSocket {path}, /api/v1, /metrics and /health {guard}",
                 host=host, port=self.bound_port, path=self.config.path, exposure=exposure,
                 guard="behind [web] metrics_token" if self.server.config.web.metrics_token else "open")
        return succeed(None)

    @property
    def bound_port(self) -> int:
        return self.port.getHost().port if self.port is not None else 0

    def stop(self) -> Deferred:
        if self.feed is not None:
            self.feed.close()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)
