"""Idempotent ``$inc`` upserts of a :class:`Tally` into ``EstadisticasRecepcion``.

Each flush of one (listener, day) has an id, ``<instance>/<run>/<sequence>``
(``run`` is new for each process), and the document lists the ids applied to
it (``applied``). The update's filter is ``{_id, applied: {$ne: id}}``, so
applying a flush again (a retry after a lost reply, a re-send after a
timeout) changes nothing: a minute already written is never counted twice.
Instances add up because every flush only ``$inc``-rements and
``$addToSet``-s. A flush that could not be written keeps its id and is tried
again at the next interval; counts are taken from the tally only into a
flush, so nothing is lost while the store is away (up to ``MAX_PENDING``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from attrs import frozen

from waygps.stats.tally import Tally

DUPLICATE_KEY = 11000
MAX_PENDING = 10_000


@frozen
class Flush:
    id: str
    listener: str
    day: str
    inc: dict[str, float]
    devices: tuple[str, ...]

    @property
    def document_id(self) -> str:
        return document_id(self.listener, self.day)


def document_id(listener: str, day: str) -> str:
    return f"{day}|{listener}"


def flushes_of(tally: Tally, prefix: str, first_seq: int) -> list[Flush]:
    out = []
    for seq, (listener, day) in enumerate(sorted(tally.keys()), start=first_seq):
        inc = {k: (int(v) if float(v).is_integer() else v) for k, v in tally.counts.get((listener, day), {}).items()}
        out.append(Flush(id=f"{prefix}/{seq}", listener=listener, day=day, inc=inc,
                         devices=tuple(sorted(tally.devices.get((listener, day), ())))))
    return out


def update_of(flush: Flush, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) applying ``flush`` at most once."""
    day_start = datetime.strptime(flush.day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    update: dict[str, Any] = {
        "$setOnInsert": {"listener": flush.listener, "day": flush.day, "date": day_start},
        "$max": {"updatedAt": now},
        "$push": {"applied": flush.id},
    }
    if flush.inc:
        update["$inc"] = dict(flush.inc)
    if flush.devices:
        update["$addToSet"] = {"devices": {"$each": list(flush.devices)}}
    return {"_id": flush.document_id, "applied": {"$ne": flush.id}}, update
