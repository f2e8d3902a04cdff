"""`waygps cleanup --older-than 90d`: a one-off purge of old position reports.

For a MongoDB without TTL indexes (or to purge at once what a newly shortened
retention would take days to expire). Reports whose ``dataServidor`` (the
time the server received them) is older than the age are deleted in chunks,
oldest first, with a progress bar on standard error. ``Veiculo`` and
``Comando`` are not touched. Talks to the configured MongoDB directly
(pymongo, blocking); with the embedded store, the server must be running.

Exit status: 0 done (or nothing to do), 1 the store failed or could not be
reached, 2 malformed arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TextIO

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` -> a positive ``timedelta``."""
    match = _AGE.match(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive age such as 90d, 12h, 2w (s, m, h, d or w), got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than", dest="older_than", type=parse_age, required=True, metavar="AGE",
                        help="delete reports received longer ago than this: 90d, 12h, 2w ...")
    parser.add_argument("--chunk", type=int, default=5000,
                        help="reports deleted per request (default 5000)")
    parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for MongoDB (default 10)")


class ProgressBar:
    """``[#######.............]  35%  3,500/10,000`` redrawn in place on a terminal.

    Written to a file that is not a terminal (a log), it prints a plain line
    at every tenth of the way instead.
    """

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total = total
        self.out = out
        self.width = width
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last_tenth = -1

    def update(self, done: int) -> None:
        fraction = 1.0 if self.total <= 0 else min(1.0, done / self.total)
        if self.tty:
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "." * (self.width - filled)
            self.out.write(f"\r[{bar}] {fraction:4.0%}  {done:,}/{self.total:,}")
            self.out.flush()
            return
        tenth = int(fraction * 10)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.out.write(f"{fraction:4.0%}  {done:,}/{self.total:,}\n")
            self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def mongo_uri(config: Any) -> str:
    if config.mongodb.uri:
        return config.mongodb.uri
    return f"mongodb://{config.embedded.host}:{config.embedded.port}/?directConnection=true"


def purge(collection: Any, cutoff: datetime, chunk: int, progress: Callable[[int], None]) -> int:
    """Delete reports received before ``cutoff``, oldest first, about ``chunk`` at a time; returns how many.

    Each request deletes a range of ``dataServidor`` (up to the time of the ``chunk``-th oldest
    report), which the index answers; a list of ``_id`` values would be a collection scan per
    request on some stores.
    """
    deleted = 0
    while True:
        edge = list(collection.find({"dataServidor": {"$lt": cutoff}}, {"dataServidor": 1, "_id": 0})
                    .sort("dataServidor", 1).skip(chunk - 1).limit(1))
        bound: dict[str, Any] = {"$lt": cutoff}
        if edge:
            bound["$lte"] = edge[0]["dataServidor"]
        result = collection.delete_many({"dataServidor": bound})
        deleted += result.deleted_count
        progress(deleted)
        if not edge:
            return deleted


def run(args: argparse.Namespace, config: Any, now: datetime | None = None,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    import pymongo
    from pymongo.errors import PyMongoError
    from pymongo.write_concern import WriteConcern

    from waygps.store.connection import redact

    out = out or sys.stdout
    err = err or sys.stderr
    if args.chunk <= 0:
        print(f"waygps cleanup: --chunk: expected a positive number, got {args.chunk}", file=err)
        return 2
    now = now or datetime.now(timezone.utc)
    cutoff = now - args.older_than
    uri = mongo_uri(config)
    names = config.mongodb.collections
    w = config.mongodb.write_concern
    concern = WriteConcern(w="majority" if w == "majority" else int(w))
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(args.timeout * 1000), tz_aware=True)
    try:
        collection = client[config.mongodb.database].get_collection(names.positions, write_concern=concern)
        total = collection.count_documents({"dataServidor": {"$lt": cutoff}})
        where = f"{config.mongodb.database}.{names.positions}"
        before = cutoff.isoformat(timespec="seconds")
        print(f"{total:,} reports in {where} received before {before}", file=out)
        if total == 0 or args.dry_run:
            if args.dry_run and total:
                print("dry run: nothing deleted", file=out)
            return 0
        bar = ProgressBar(total, err)
        bar.update(0)
        deleted = purge(collection, cutoff, args.chunk, bar.update)
        bar.finish()
        print(f"deleted {deleted:,} reports", file=out)
        if deleted < total:
            print(f"{total - deleted:,} others were removed meanwhile (by the TTL index or another client)",
                  file=out)
        return 0
    except PyMongoError as e:
        hint = "" if config.mongodb.uri else " (the embedded store runs only while the server runs)"
        print(f"waygps cleanup: MongoDB at {redact(uri)}: {type(e).__name__}: {e}{hint}", file=err)
        return 1
    finally:
        client.close()
