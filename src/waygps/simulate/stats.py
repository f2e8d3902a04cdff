"""What a simulated fleet counts: reports sent and acknowledged, re-sends, acknowledgement latency.

Latencies go into a fixed logarithmic histogram (about 2 % wide buckets from
0.1 ms to 20 min), so a long run with many devices keeps constant memory and
still gives p50 / p99 to within a bucket.
"""

from __future__ import annotations

import math
from typing import Any

LOWEST = 1e-4  # seconds
HIGHEST = 1200.0
GROWTH = 1.02
BUCKETS = int(math.log(HIGHEST / LOWEST, GROWTH)) + 2

COUNTERS = ("sent", "acked", "resent", "rejected", "heartbeats", "heartbeat_acks", "commands",
            "command_answers", "connects", "disconnects", "connect_failures", "unexpected")


class LatencyHistogram:
    __slots__ = ("counts", "total", "sum")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.total = 0
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        index = 0 if seconds <= LOWEST else min(BUCKETS - 1, int(math.log(seconds / LOWEST, GROWTH)) + 1)
        self.counts[index] += 1
        self.total += 1
        self.sum += seconds

    def merge(self, other: "LatencyHistogram") -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total
        self.sum += other.sum

    def percentile(self, share: float) -> float | None:
        """Seconds below which ``share`` (0-1) of the samples fall (the bucket's upper bound)."""
        if not self.total:
            return None
        wanted = max(1, math.ceil(self.total * share))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= wanted:
                return LOWEST * GROWTH ** index
        return HIGHEST  # pragma: no cover - the loop always reaches ``wanted``


class Stats:
    """Counters of a whole fleet (devices add to it), and the latency of acknowledged reports."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.ended: float | None = None
        self.connected = 0
        self.devices = 0
        self.latency = LatencyHistogram()
        self.recent = LatencyHistogram()  # since the last progress line
        for name in COUNTERS:
            setattr(self, name, 0)

    def ack(self, latency: float) -> None:
        self.acked += 1
        self.latency.add(latency)
        self.recent.add(latency)

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def summary(self, now: float) -> dict[str, Any]:
        """Every figure of the run so far, as plain JSON-ready values."""
        start = self.started if self.started is not None else now
        end = self.ended if self.ended is not None else now
        seconds = max(end - start, 1e-9)
        p50, p99 = self.latency.percentile(0.50), self.latency.percentile(0.99)
        return {
            "seconds": round(seconds, 3),
            "devices": self.devices,
            "connected": self.connected,
            **self.counters(),
            "unacknowledged": max(0, self.sent - self.acked),
            "sent_per_second": round(self.sent / seconds, 1),
            "acked_per_second": round(self.acked / seconds, 1),
            "ack_latency_p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "ack_latency_p99_ms": None if p99 is None else round(p99 * 1000, 1),
            "ack_latency_mean_ms": round(self.latency.sum / self.latency.total * 1000, 1)
            if self.latency.total else None,
        }


class Window:
    """Rates and latency over the last progress interval (for the live line)."""

    def __init__(self, stats: Stats, now: float) -> None:
        self.stats = stats
        self.since = now
        self.last = stats.counters()

    def line(self, now: float) -> str:
        stats = self.stats
        seconds = max(now - self.since, 1e-9)
        current = stats.counters()
        rate = {k: (current[k] - self.last[k]) / seconds for k in ("sent", "acked")}
        p50 = stats.recent.percentile(0.5)
        p99 = stats.recent.percentile(0.99)
        self.since, self.last, stats.recent = now, current, LatencyHistogram()
        elapsed = now - (stats.started or now)

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f}"

        failures = f" ({stats.connect_failures} connection attempts failed)" if stats.connect_failures else ""
        return (f"[{elapsed:6.0f}s] connected {stats.connected}/{stats.devices}{failures}  sent {rate['sent']:.0f}/s  "
                f"acked {rate['acked']:.0f}/s  re-sent {stats.resent}  pending {max(0, stats.sent - stats.acked)}"
                f"  ack p50 {ms(p50)} ms p99 {ms(p99)} ms  total acked {stats.acked}")
