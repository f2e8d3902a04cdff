"""``/metrics``: every WayGPS metric in the Prometheus text format.

The metrics themselves are defined in ``waygps.metrics``; this module serves
them, and keeps two figures over the last minute that a Prometheus server
would compute with ``rate()`` but a person running ``waygps status`` has no
server for: reports stored per second and the mean store batch latency.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource

from waygps import metrics

log = Logger(namespace="waygps.web")

REPORTS_RATE = Gauge(
    "waygps_reports_stored_per_second", "Position reports stored per second over the last minute"
)
STORE_LATENCY_RECENT = Gauge(
    "waygps_store_batch_seconds_recent", "Mean store batch latency over the last minute (0 when idle)"
)


class MetricsResource(Resource):
    """The registry in the text format (or OpenMetrics when the scraper asks for it)."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Any) -> bytes:
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return encoder(self.registry)


def _sum_samples(metric: Any, suffix: str) -> float:
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                total += sample.value
    return total


class RecentRates:
    """Samples counters every ``step`` seconds and sets the last-minute gauges.

    ``start()`` / ``stop()`` are called by the web site when its port opens
    and closes. Time is the reactor's, so tests turn a ``task.Clock``.
    """

    def __init__(self, reactor: Any, window: float = 60.0, step: float = 5.0) -> None:
        self.reactor = reactor
        self.window = window
        self.step = step
        self._samples: deque[tuple[float, float, float, float]] = deque()
        self._loop: LoopingCall | None = None

    def sample(self) -> None:
        now = self.reactor.seconds()
        reports = _sum_samples(metrics.REPORTS_STORED, "_total")
        latency_sum = _sum_samples(metrics.STORE_BATCH_SECONDS, "_sum")
        latency_count = _sum_samples(metrics.STORE_BATCH_SECONDS, "_count")
        self._samples.append((now, reports, latency_sum, latency_count))
        # Keep the newest sample at least ``window`` old as the start of the window.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        first = self._samples[0]
        elapsed = now - first[0]
        if elapsed <= 0:
            REPORTS_RATE.set(0)
            STORE_LATENCY_RECENT.set(0)
            return
        REPORTS_RATE.set(max(0.0, reports - first[1]) / elapsed)
        batches = latency_count - first[3]
        STORE_LATENCY_RECENT.set((latency_sum - first[2]) / batches if batches > 0 else 0.0)

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self.sample)
            self._loop.clock = self.reactor
            self._loop.start(self.step, now=True).addErrback(
                lambda f: log.failure("metrics sampler stopped", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
