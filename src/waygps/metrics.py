"""Every Prometheus metric of WayGPS, defined once.

Drivers and services import the metric they update from here, so that names
and labels stay one list. Served at ``/metrics`` by the web service.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily


class HotCounter:
    """A labelled counter for the per-report path, exported as a Prometheus counter when scraped.

    ``prometheus_client.Counter.inc`` checks its state and takes a lock on every
    call, which cost about a tenth of a report's bookkeeping; these children are
    plain numbers, updated on the reactor thread (where ``/metrics`` is served too).
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _HotChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> "_HotChild":
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            child = self._children[key] = _HotChild()
        return child

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            family.add_metric(list(key), child.value)
        yield family


class _HotChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


FRAMES_RECEIVED = HotCounter(
    "waygps_frames_received", "Frames (or datagrams) received from devices", ["driver"]
)
FRAMES_FLAGGED = Counter(
    "waygps_frames_flagged", "Input kept but odd: failed IMEI check digit, unknown layout...", ["driver", "reason"]
)
FRAMES_DECODED = HotCounter("waygps_frames_decoded", "Frames decoded into events", ["driver"])
FRAMES_REJECTED = Counter(
    "waygps_frames_rejected", "Input thrown away: garbage, bad checksum, too long...", ["driver", "reason"]
)
REPORTS_STORED = Counter("waygps_reports_stored", "Position reports stored", ["driver"])
REPORTS_FLAGGED = Counter(
    "waygps_reports_flagged", "Reports stored as invalid by the data-quality checks", ["driver", "reason"]
)
DUPLICATES = Counter("waygps_duplicate_reports", "Re-sent reports recognised as already stored", ["driver"])
ACKS_SENT = HotCounter("waygps_acks_sent", "Acknowledgements written to devices after storing", ["driver"])
ACKS_WITHHELD = Counter(
    "waygps_acks_withheld", "Acknowledgements not sent because storing failed", ["driver"]
)
CONNECTIONS_OPEN = Gauge("waygps_connections_open", "Open device connections", ["listener"])
CONNECTIONS_REFUSED = Counter(
    "waygps_connections_refused", "Connections or devices refused", ["listener", "reason"]
)
CONNECTIONS_CLOSED = Counter("waygps_connections_closed", "Device connections closed", ["listener", "reason"])
DEVICES_ONLINE = Gauge("waygps_devices_online", "Devices with a live channel to this instance")
STORE_QUEUE = Gauge("waygps_store_queue_depth", "Events waiting to be written")
STORE_BATCH_SECONDS = Histogram(
    "waygps_store_batch_seconds",
    "Time from sending a batch to MongoDB to its acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_FAILURES = Counter("waygps_store_failures", "Batches that could not be stored", ["reason"])
STORE_PAUSED = Gauge("waygps_store_backpressure", "1 while device reads are paused by a full queue")
WEBSOCKET_CLIENTS = Gauge("waygps_websocket_clients", "Connected WebSocket clients")
COMMANDS = Counter("waygps_command_transitions", "Command status changes", ["status"])
COMMANDS_PENDING = Gauge("waygps_commands_pending", "Commands pending for devices on this instance")
REJECTED_KEPT = Counter("waygps_rejected_frames_kept", "Rejected or odd frames written to FramesRejeitados", ["driver"])
REJECTED_DROPPED = Counter(
    "waygps_rejected_frames_dropped", "Rejected frames not kept (writer queue full or store error)", ["reason"]
)
WEBSOCKET_MESSAGES = Counter("waygps_websocket_messages_sent", "Messages sent to WebSocket clients", ["type"])
WEBSOCKET_COALESCED = Counter(
    "waygps_websocket_updates_coalesced", "gps_update messages replaced by a newer one before a slow client read them"
)
WEBSOCKET_DROPPED = Counter("waygps_websocket_clients_dropped", "WebSocket clients disconnected by the server",
                            ["reason"])
WEBSOCKET_REFUSED = Counter("waygps_websocket_handshakes_refused", "WebSocket handshakes refused", ["reason"])
WEBSOCKET_BAD_MESSAGES = Counter("waygps_websocket_bad_messages", "Client messages answered with an error",
                                 ["reason"])
WEBSOCKET_STALE = Counter(
    "waygps_websocket_stale_updates", "Stored reports not sent as gps_update: older than the newest one sent"
)
API_REQUESTS = Counter("waygps_api_requests", "HTTP API requests answered", ["endpoint", "status"])
API_POINTS = Counter("waygps_api_points_exported", "Track points written by the HTTP API", ["format"])
WEB_REFUSED = Counter("waygps_web_refused", "Web requests refused for a missing or wrong token", ["resource", "code"])
FEED_CHANGES = Counter("waygps_feed_changes", "Store changes read by the fleet-wide feed (change stream)")
FEED_INTERRUPTIONS = Counter(
    "waygps_feed_interruptions", "Change stream interruptions (unreachable, token_lost)", ["reason"]
)
HISTORY_EXPIRED = Counter(
    "waygps_history_expired", "Reports past [retention] days deleted by WayGPS's expiry pass (retention.expiry)"
)
