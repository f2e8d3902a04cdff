"""Latency distributions as fixed buckets: counts add up with ``$inc``, so instances and minutes merge.

A percentile read from buckets is the upper edge of the bucket where it
falls (an over-estimate by at most one bucket).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Mapping

# Upper edges in milliseconds; anything above the last edge falls in "inf".
EDGES_MS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
    3_600_000, 21_600_000, 86_400_000,
)
INF = "inf"


KEYS = tuple(f"le_{edge}" for edge in EDGES_MS)  # the bucket key of each edge, in order


def bucket_of(ms: float) -> str:
    """The bucket key of a duration: ``"le_<edge>"`` or ``"inf"`` (a MongoDB-safe field name)."""
    return KEYS[bisect_left(EDGES_MS, ms)] if ms <= EDGES_MS[-1] else INF


def _edge(key: str) -> float:
    return float("inf") if key == INF else float(key[3:])


def percentile(buckets: Mapping[str, float], fraction: float) -> float | None:
    """The upper edge (ms) of the bucket holding the ``fraction`` quantile; ``None`` without samples.

    The last bucket has no upper edge: a quantile there reads as the last finite edge.
    """
    items = sorted(((_edge(k), float(v)) for k, v in buckets.items() if v), key=lambda kv: kv[0])
    total = sum(v for _, v in items)
    if total <= 0:
        return None
    needed = fraction * total
    seen = 0.0
    for edge, count in items:
        seen += count
        if seen >= needed:
            return edge if edge != float("inf") else float(EDGES_MS[-1])
    return float(EDGES_MS[-1])  # pragma: no cover - rounding
