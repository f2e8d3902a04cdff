"""``waygps rejected --since 1h [--driver NAME] [--imei IMEI] [--raw] [--limit N]``.

Lists the frames kept in ``FramesRejeitados`` (rejected input, and reports
decoded only by the shape of their position block), oldest first. Each line
shows time, driver, IMEI, peer, reason and the frame as hex; with ``--raw``
only the hex, one frame a line, which ``waygps decode --driver NAME --hex``
reads back (``--udp`` for frames of a UDP listener).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, TextIO

from waygps.cli.cleanup import parse_age
from waygps.cli.command import StoreUnavailable, open_db

FAILURE = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_age, default=parse_age("1h"),
                        help="how far back, e.g. 30m, 1h, 2d (default 1h)")
    parser.add_argument("--driver", help="only frames of this driver")
    parser.add_argument("--imei", help="only frames of this device")
    parser.add_argument("--reason", help="only frames rejected for this reason")
    parser.add_argument("--raw", action="store_true",
                        help="print only the hex of each frame (input for `waygps decode --hex`)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many frames (default 1000)")


def query(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    found: dict[str, Any] = {"time": {"$gte": now - args.since}}
    if args.driver:
        found["driver"] = args.driver
    if args.imei:
        found["IMEI"] = args.imei
    if args.reason:
        found["reason"] = args.reason
    return found


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def write(docs: Iterable[Mapping[str, Any]], raw: bool, out: TextIO) -> int:
    count = 0
    for doc in docs:
        count += 1
        if raw:
            out.write(f"{doc.get('hex', '')}\n")
            continue
        cut = " (truncated)" if doc.get("truncated") else ""
        out.write(f"{_when(doc.get('time'))} {doc.get('driver') or '-'} {doc.get('IMEI') or '-'} "
                  f"{doc.get('peer') or '-'} {doc.get('reason') or '-'} {doc.get('size', 0)}B{cut} "
                  f"{doc.get('hex', '')}\n")
    return count


def run(args: argparse.Namespace, config: Any, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    try:
        client, db = open_db(config)
    except StoreUnavailable as e:
        print(f"waygps rejected: {e}", file=sys.stderr)
        return FAILURE
    try:
        collection = db[config.mongodb.collections.rejected]
        docs = collection.find(query(args, now), {"_id": 0}).sort("time", 1).limit(max(args.limit, 1))
        count = write(docs, args.raw, sys.stdout)
        if not args.raw:
            print(f"{count} frame(s)", file=sys.stderr)
        return 0
    except Exception as e:  # a store error: one line, not a traceback
        from pymongo.errors import PyMongoError

        if isinstance(e, PyMongoError):
            print(f"waygps rejected: MongoDB error: {e}", file=sys.stderr)
            return FAILURE
        raise
    finally:
        client.close()
