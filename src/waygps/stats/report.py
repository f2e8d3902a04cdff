"""``EstadisticasRecepcion`` documents read back as the daily table (the API and ``waygps stats``)."""

from __future__ import annotations

from typing import Any, Mapping

from waygps.stats.histogram import percentile

COLUMNS = ("day", "listener", "devices", "received", "stored", "duplicates", "rejected", "flagged",
           "cmd_sent", "cmd_confirmed", "cmd_failed", "store_ms_mean", "store_ms_p95", "delay_ms_mean",
           "delay_ms_p95")


def day_filter(start: str | None, end: str | None, listener: str | None) -> dict[str, Any]:
    """Documents of days ``start``..``end`` (inclusive, ``YYYY-MM-DD``) and one listener if given."""
    query: dict[str, Any] = {}
    days: dict[str, str] = {}
    if start:
        days["$gte"] = start
    if end:
        days["$lte"] = end
    if days:
        query["day"] = days
    if listener:
        query["listener"] = listener
    return query


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _latency(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    part = doc.get(name) or {}
    count = _number(part.get("count"))
    buckets = part.get("buckets") or {}
    return {
        "count": int(count),
        "mean_ms": round(_number(part.get("sum_ms")) / count, 1) if count else None,
        "p95_ms": percentile(buckets, 0.95) if count else None,
    }


def daily(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One day of one listener, as the API returns it."""
    commands = doc.get("commands") or {}
    return {
        "day": doc.get("day"),
        "listener": doc.get("listener"),
        "devices_connected": len(doc.get("devices") or ()),
        "received": int(_number(doc.get("received"))),
        "stored": int(_number(doc.get("stored"))),
        "duplicates": int(_number(doc.get("duplicates"))),
        "rejected": int(_number(doc.get("rejected"))),
        "rejected_by": {k: int(_number(v)) for k, v in (doc.get("rejected_by") or {}).items()},
        "flagged": int(_number(doc.get("flagged"))),
        "flagged_by": {k: int(_number(v)) for k, v in (doc.get("flagged_by") or {}).items()},
        "commands": {s: int(_number(commands.get(s))) for s in ("sent", "confirmed", "failed")},
        "store_latency": _latency(doc, "store_latency"),
        "device_delay": _latency(doc, "device_delay"),
    }


def table_row(day: Mapping[str, Any]) -> tuple[Any, ...]:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return tuple(fmt(v) for v in (
        day["day"], day["listener"], day["devices_connected"], day["received"], day["stored"], day["duplicates"],
        day["rejected"], day["flagged"], day["commands"]["sent"], day["commands"]["confirmed"],
        day["commands"]["failed"], day["store_latency"]["mean_ms"], day["store_latency"]["p95_ms"],
        day["device_delay"]["mean_ms"], day["device_delay"]["p95_ms"]))


def render_table(days: list[dict[str, Any]]) -> str:
    rows = [COLUMNS] + [table_row(d) for d in days]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rows) + "\n"
