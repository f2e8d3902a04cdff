"""Reading a track from ``DadosVeiculo`` a batch at a time.

``open_cursor`` (txmongo, for the server) returns a cursor whose
``next_batch()`` the caller pulls when it is ready for more, so a slow
client slows the reads instead of filling memory. ``iter_batches``
(pymongo, for the CLI) does the same with a blocking cursor.
Both sort by ``dataDevice`` and hint the ``{IMEI: 1, dataDevice: -1}`` index.
"""

from __future__ import annotations

from typing import Any, Iterator

from waygps.history.points import PROJECTION, TrackPoint, point_from_doc
from waygps.history.query import HINT, SORT, TrackQuery

BATCH_SIZE = 1000


def open_cursor(collection: Any, query: TrackQuery, batch_size: int = BATCH_SIZE) -> Any:
    """A txmongo ``Cursor``: call ``next_batch()`` (a Deferred of documents) until ``exhausted``."""
    from txmongo import filter as qf

    modifiers = qf.sort(_keys(qf, SORT)) + qf.hint(_keys(qf, HINT))
    return collection.find(query.filter(), dict(PROJECTION), limit=query.limit, sort=modifiers,
                           batch_size=batch_size)


def _keys(qf: Any, pairs: tuple[tuple[str, int], ...]) -> Any:
    keys = None
    for name, direction in pairs:
        key = qf.ASCENDING(name) if direction == 1 else qf.DESCENDING(name)
        keys = key if keys is None else keys + key
    return keys


def points_of(docs: list[dict]) -> list[TrackPoint]:
    return [point_from_doc(doc) for doc in docs if "dataDevice" in doc]


def iter_batches(collection: Any, query: TrackQuery, batch_size: int = BATCH_SIZE) -> Iterator[list[TrackPoint]]:
    """Blocking (pymongo): lists of at most ``batch_size`` points, oldest first.

    The server creates the track index at startup; on a database it never ran on, the hint is
    refused and the query goes without it (the planner still picks an index if there is one).
    """
    from pymongo.errors import OperationFailure

    def open_(hint: bool) -> Any:
        cursor = (collection.find(query.filter(), dict(PROJECTION), limit=query.limit, batch_size=batch_size)
                  .sort(list(SORT)))
        return cursor.hint(list(HINT)) if hint else cursor

    cursor = open_(True)
    try:
        first = next(cursor, None)
    except OperationFailure as e:
        if "hint" not in str(e):
            raise
        cursor = open_(False)
        first = next(cursor, None)
    batch: list[dict] = [] if first is None else [first]
    try:
        for doc in cursor:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield points_of(batch)
                batch = []
        if batch:
            yield points_of(batch)
    finally:
        cursor.close()
