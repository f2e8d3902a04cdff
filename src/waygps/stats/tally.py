"""Counts of one instance since its last flush, per listener and UTC day. Pure: time is an argument.

Fields (dotted paths, as ``$inc`` takes them): ``received``, ``stored``,
``duplicates``, ``rejected``, ``rejected_by.<reason>``, ``flagged``,
``flagged_by.<reason>``, ``commands.<sent|confirmed|failed>``, and two
latency histograms ``store_latency`` (receipt to stored) and
``device_delay`` (device time to receipt), each ``count``, ``sum_ms`` and
``buckets.<bucket>``. Devices seen connected are kept apart (``devices``) and
written with ``$addToSet``, so a device counts once a day however many
instances saw it.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from datetime import datetime, timezone
from functools import lru_cache

from waygps.stats.histogram import EDGES_MS, INF, KEYS

COMMAND_STATUSES = frozenset({"sent", "confirmed", "failed"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
MAX_REASON = 64


_DAYS: dict[int, str] = {}  # proleptic ordinal -> "YYYY-MM-DD": strftime costs more than the rest of a count


def day_of(now: datetime) -> str:
    if now.tzinfo is not timezone.utc:
        now = now.astimezone(timezone.utc)
    ordinal = now.toordinal()
    day = _DAYS.get(ordinal)
    if day is None:
        if len(_DAYS) >= 1024:
            _DAYS.clear()
        day = _DAYS[ordinal] = now.strftime("%Y-%m-%d")
    return day


def safe_key(text: str) -> str:
    """A reason as a field name: no dots, no ``$``, bounded length (a device cannot invent long fields)."""
    return _UNSAFE.sub("_", text)[:MAX_REASON] or "unknown"


class Histogram:
    """The field names of one latency histogram in a day's counts, made once per name."""

    __slots__ = ("count", "sum_ms", "buckets")

    def __init__(self, name: str) -> None:
        self.count = f"{name}.count"
        self.sum_ms = f"{name}.sum_ms"
        # the field of every bucket, in bucket order (``bucket_of`` gives the same keys)
        self.buckets = tuple(f"{name}.buckets.{key}" for key in KEYS) + (f"{name}.buckets.{INF}",)

    def add(self, counts: dict[str, float], seconds: float) -> None:
        """Count one duration (runs twice per stored report: no string built here)."""
        ms = seconds * 1000.0
        if not ms >= 0.0:  # (NaN too)
            ms = 0.0
        counts[self.count] += 1
        counts[self.sum_ms] += ms
        counts[self.buckets[bisect_left(EDGES_MS, ms)]] += 1  # past the last edge: the "inf" field


@lru_cache(maxsize=64)
def histogram(name: str) -> Histogram:
    return Histogram(name)


def add_latency(counts: dict[str, float], name: str, seconds: float) -> None:
    """Count one duration into the histogram ``name`` of ``counts``."""
    histogram(name).add(counts, seconds)


class Tally:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.devices: dict[tuple[str, str], set[str]] = defaultdict(set)

    def __bool__(self) -> bool:
        return bool(self.counts) or bool(self.devices)

    def add(self, listener: str, now: datetime, field: str, amount: float = 1) -> None:
        self.counts[(listener, day_of(now))][field] += amount

    def device(self, listener: str, now: datetime, imei: str) -> None:
        self.devices[(listener, day_of(now))].add(imei)

    def latency(self, listener: str, now: datetime, name: str, seconds: float) -> None:
        add_latency(self.counts[(listener, day_of(now))], name, seconds)

    def fields(self, listener: str, day: str) -> dict[str, float]:
        """The counts of ``listener`` on ``day`` (``YYYY-MM-DD``), to add to in place (the collector's
        per-report path, which knows the day already)."""
        return self.counts[(listener, day)]

    def reason(self, listener: str, now: datetime, kind: str, reason: str) -> None:
        counts = self.counts[(listener, day_of(now))]
        counts[kind] += 1
        counts[f"{kind}_by.{safe_key(reason)}"] += 1

    def keys(self) -> set[tuple[str, str]]:
        return set(self.counts) | set(self.devices)
