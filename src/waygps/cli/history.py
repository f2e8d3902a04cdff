"""``waygps history IMEI --from --to --format gpx|csv|geojson|json [-o FILE]``: export a device's track.

Reads ``DadosVeiculo`` through the ``{IMEI, dataDevice}`` index with a
blocking pymongo cursor, batch by batch, and writes each batch as it comes,
so a track of any length runs in bounded memory. Long exports show a
progress bar on standard error. With the embedded store, the server must be
running.

Exit status: 0 done, 1 the store failed or could not be reached, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any, BinaryIO

from waygps.cli.cleanup import ProgressBar, mongo_uri
from waygps.history.export import FORMATS, encoder_for
from waygps.history.query import TrackQuery
from waygps.history.source import iter_batches
from waygps.history.times import time_range

PROGRESS_FROM = 10_000  # points: shorter exports need no bar


def add_range_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("imei", help="the device")
    parser.add_argument("--from", dest="start", metavar="TIME",
                        help="start: ISO 8601 (UTC unless an offset is given) or a day YYYY-MM-DD "
                             "(default: 24 hours before --to)")
    parser.add_argument("--to", dest="end", metavar="TIME",
                        help="end, exclusive; a bare day means the end of that day (default: now)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for MongoDB (default 10)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_range_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="gpx", help="output format (default gpx)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--valid", choices=("true", "false"), help="only valid (true) or invalid (false) fixes")
    parser.add_argument("--limit", type=int, default=0, help="at most this many points (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_range(args: argparse.Namespace, now: datetime, err: Any, command: str) -> tuple[datetime, datetime] | None:
    try:
        return time_range(args.start, args.end, now)
    except ValueError as e:
        print(f"waygps {command}: --{e}", file=err)
        return None


def connect(config: Any, timeout: float) -> Any:
    import pymongo

    return pymongo.MongoClient(mongo_uri(config), serverSelectionTimeoutMS=int(timeout * 1000), tz_aware=True)


def run(args: argparse.Namespace, config: Any, now: datetime | None = None, out: BinaryIO | None = None,
        err: Any = None) -> int:
    from pymongo.errors import PyMongoError

    from waygps.store.connection import redact

    err = err or sys.stderr
    span = parse_range(args, now or datetime.now(timezone.utc), err, "history")
    if span is None:
        return 2
    if args.limit < 0:
        print(f"waygps history: --limit: must not be negative, got {args.limit}", file=err)
        return 2
    valid = None if args.valid is None else args.valid == "true"
    query = TrackQuery(args.imei, span[0], span[1], valid=valid, limit=args.limit)
    client = connect(config, args.timeout)
    target: Any = None
    try:
        collection = client[config.mongodb.database][config.mongodb.collections.positions]
        total = collection.count_documents(query.filter())
        if args.limit:
            total = min(total, args.limit)
        target = open(args.output, "wb") if args.output else (out or sys.stdout.buffer)
        bar = ProgressBar(total, err) if total >= PROGRESS_FROM and not args.no_progress else None
        encoder = encoder_for(args.format, args.imei)
        target.write(encoder.head())
        done = 0
        for batch in iter_batches(collection, query, config.history.batch_size):
            target.write(encoder.points(batch))
            done += len(batch)
            if bar is not None:
                bar.update(done)
        target.write(encoder.tail())
        target.flush()
        if bar is not None:
            bar.finish()
        where = args.output or "standard output"
        print(f"{encoder.count:,} points of {args.imei} ({query.start.isoformat()} .. {query.end.isoformat()}) "
              f"written to {where} as {args.format}", file=err)
        return 0
    except PyMongoError as e:
        print(f"waygps history: MongoDB at {redact(mongo_uri(config))}: {e}", file=err)
        return 1
    except OSError as e:
        print(f"waygps history: {e}", file=err)
        return 1
    finally:
        if args.output and target is not None:
            target.close()
        client.close()
