"""The cluster lines of `waygps status`: every instance from the store's ``WayGPSInstance`` documents.

``/health`` and ``/metrics`` stay local to each instance; this reads the
instances' heartbeat documents, so one command shows the whole cluster.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from waygps.cluster.lease import RUNNING, is_stale


def _ago(when: Any, now: float) -> str:
    if not isinstance(when, datetime):
        return "never"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = max(0.0, now - when.timestamp())
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _time(when: Any) -> str:
    if not isinstance(when, datetime):
        return "?"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def cluster_lines(docs: Iterable[Mapping[str, Any]], now: float) -> list[str]:
    """One summary line and one line per instance (running first); a stale one says STALE."""
    docs = sorted(docs, key=lambda d: (d.get("state") != RUNNING, str(d.get("_id"))))
    running = [d for d in docs if d.get("state") == RUNNING]
    stale = [d for d in running if is_stale(d, now)]
    head = f"{len(running)} running instance{'s' if len(running) != 1 else ''}"
    if stale:
        head += f", {len(stale)} STALE"
    others = len(docs) - len(running)
    if others:
        head += f", {others} stopped or expired"
    lines = [f"{'cluster':<20} {head}"]
    for doc in docs:
        state = str(doc.get("state", "?"))
        if doc in stale:
            state = f"STALE (lease {float(doc.get('leaseSeconds') or 0):g} s missed)"
        lines.append(
            f"  {doc.get('_id')}  host {doc.get('host', '?')}  started {_time(doc.get('started'))}  "
            f"devices {doc.get('devices', 0)}  {float(doc.get('reportsPerSecond') or 0):.1f} reports/s  "
            f"heartbeat {_ago(doc.get('heartbeat'), now)}  version {doc.get('version', '?')}  {state}")
    return lines


def read_instances(config: Any, timeout: float) -> list[dict[str, Any]]:
    """The instance documents, read with pymongo (blocking: this is a command-line tool)."""
    import pymongo

    mongo = config.mongodb
    uri = mongo.uri or f"mongodb://{config.embedded.host}:{config.embedded.port}/"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000))
    try:
        return list(client[mongo.database][mongo.collections.instances].find({}, {"resumeToken": 0}))
    finally:
        client.close()
