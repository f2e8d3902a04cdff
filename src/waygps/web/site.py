"""The HTTP site on ``[websocket] port``: ``/metrics``, ``/health``, and what others mount.

``build_site(health_checks, extra, reactor=...)`` returns a :class:`WebSite`
(a ``twisted.web.server.Site``). ``extra`` maps paths to resources, so the
WebSocket endpoint shares the port::

    site = build_site(checks, {config.websocket.path: WebSocketResource(factory)}, reactor=reactor)
    internet.TCPServer(config.websocket.port, site, interface=config.websocket.host)

A path like ``/ws/gps/`` is mounted at the nested children ``ws`` -> ``gps``
(empty segments ignored), so a leaf resource answers both ``/ws/gps`` and
``/ws/gps/``. The site samples the last-minute gauges of
``waygps.web.metrics.RecentRates`` while its port is open.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.http import combinedLogFormatter
from twisted.web.server import Site

from waygps.redaction import REDACTOR
from waygps.web.access import TokenGuard
from waygps.web.health import Check, HealthResource
from waygps.web.metrics import MetricsResource, RecentRates

_QUIET = frozenset({b"/metrics", b"/health"})
_INDEX = b"WayGPS\n/metrics  Prometheus metrics\n/health   store and listeners\n"


class _Branch(Resource):
    """A plain path segment: 404 for anything not mounted below it."""

    def getChild(self, path: bytes, request: Any) -> Any:
        return notFound()


class _Index(_Branch):
    page: Resource | None = None  # what ``/`` shows instead of the text index (the map page)

    def getChild(self, path: bytes, request: Any) -> Any:
        if path == b"":
            return self.page if self.page is not None else self
        return notFound()

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return _INDEX


def _segments(path: str | bytes) -> list[bytes]:
    raw = path.encode("utf-8") if isinstance(path, str) else path
    return [part for part in raw.split(b"/") if part]


def mount(root: Resource, path: str | bytes, resource: Resource) -> None:
    """Put ``resource`` at ``path`` below ``root``, creating plain intermediate resources."""
    segments = _segments(path)
    if not segments:
        raise ValueError(f"cannot mount at the root: {path!r}")
    node = root
    for segment in segments[:-1]:
        child = node.children.get(segment)
        if child is None:
            child = _Branch()
            node.putChild(segment, child)
        node = child
    if segments[-1] in node.children:
        raise ValueError(f"{path!r} is already mounted")
    node.putChild(segments[-1], resource)


def redacted_access_line(timestamp: str, request: Any) -> str:
    """The combined access-log line with tokens (``?token=``, ``Authorization``...) removed."""
    return REDACTOR.text(combinedLogFormatter(timestamp, request))


class WebSite(Site):
    """A ``Site`` that runs the last-minute metrics sampler while it listens, and whose access
    log never carries a token (see :func:`redacted_access_line`)."""

    def __init__(self, root: Resource, rates: RecentRates) -> None:
        super().__init__(root, logFormatter=redacted_access_line)
        self.rates = rates

    def startFactory(self) -> None:
        super().startFactory()
        self.rates.start()

    def stopFactory(self) -> None:
        self.rates.stop()
        super().stopFactory()

    def log(self, request: Any) -> None:
        # Scrapers and balancers poll these every few seconds: no access log line for them.
        if request.path in _QUIET:
            return
        super().log(request)


def build_site(health_checks: Sequence[Check], extra: Mapping[str | bytes, Resource] | None = None, *,
               reactor: Any, registry: CollectorRegistry = REGISTRY, health_timeout: float = 3.0,
               index: Resource | None = None, metrics_token: str = "") -> WebSite:
    """``index``: what ``/`` shows; ``metrics_token``: when set, ``/metrics`` and ``/health`` answer only
    requests carrying it."""
    root = _Index()
    root.page = index
    metrics_resource: Resource = MetricsResource(registry)
    health_resource: Resource = HealthResource(health_checks, reactor, health_timeout)
    if metrics_token:
        metrics_resource = TokenGuard(metrics_resource, metrics_token, "metrics")
        health_resource = TokenGuard(health_resource, metrics_token, "health")
    mount(root, "metrics", metrics_resource)
    mount(root, "health", health_resource)
    for path, resource in (extra or {}).items():
        mount(root, path, resource)
    site = WebSite(root, RecentRates(reactor))
    site.noisy = False
    return site
