"""The HTTP port: WebSocket feed, /metrics, /health (one twisted.web site)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

log = Logger(namespace="waygps.web")


def _put(root: Resource, path: str, resource: Resource) -> None:
    """Mount ``resource`` at ``path`` ('/ws/gps/' -> ws/gps), creating the parents."""
    parts = [p.encode() for p in path.strip("/").split("/") if p]
    node = root
    for part in parts[:-1]:
        child = node.children.get(part)
        if child is None:
            child = Resource()
            node.putChild(part, child)
        node = child
    node.putChild(parts[-1], resource)


class WebService:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.config = server.config.websocket
        self.port: Any = None
        self.root = Resource()
        self.site = Site(self.root)
        self.site.noisy = False

    def build(self) -> None:
        from autobahn.twisted.resource import WebSocketResource
        from prometheus_client.twisted import MetricsResource

        from waygps.web.websocket import GpsFeedFactory

        self.root.putChild(b"metrics", MetricsResource())
        self.feed = GpsFeedFactory(self.config, self.server.store, self.server.bus)
        _put(self.root, self.config.path, WebSocketResource(self.feed))

    def start(self) -> Deferred:
        from waygps.service import StartupError

        self.build()
        try:
            self.port = self.server.reactor.listenTCP(self.config.port, self.site, interface=self.config.host)
        except CannotListenError as e:
            raise StartupError(f"websocket.port: cannot listen on {self.config.host}:{self.config.port}: "
                               f"{e.socketError}") from None
        log.info("web: http://{host}:{port}/ (WebSocket {path}, /metrics, /health)", host=self.config.host,
                 port=self.bound_port, path=self.config.path)
        return succeed(None)

    @property
    def bound_port(self) -> int:
        return self.port.getHost().port if self.port is not None else 0

    def stop(self) -> Deferred:
        if getattr(self, "feed", None) is not None:
            self.feed.close()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)
