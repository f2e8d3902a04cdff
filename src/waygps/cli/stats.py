"""``waygps stats [--from DAY] [--to DAY] [--listener NAME] [--json]``: the daily reception statistics.

One row per listener and UTC day from ``EstadisticasRecepcion``: devices
connected, reports received / stored / duplicated / rejected / flagged,
commands, and the mean and 95th percentile of receipt-to-stored latency and
of device-to-receipt delay (milliseconds). Default: the last 7 days.
Exit status: 0 done, 1 the store failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from waygps.history.times import parse_time
from waygps.stats.report import daily, day_filter, render_table

DEFAULT_DAYS = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", metavar="DAY", help="first day, YYYY-MM-DD (default: 6 days ago)")
    parser.add_argument("--to", dest="end", metavar="DAY", help="last day, inclusive (default: today, UTC)")
    parser.add_argument("--listener", help="only this listener")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for MongoDB (default 10)")


def run(args: argparse.Namespace, config: Any, now: datetime | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    from pymongo.errors import PyMongoError

    from waygps.cli.cleanup import mongo_uri
    from waygps.cli.history import connect
    from waygps.store.connection import redact

    out = out or sys.stdout
    err = err or sys.stderr
    now = now or datetime.now(timezone.utc)
    days: dict[str, str] = {}
    for name, text, default in (("from", args.start, now - timedelta(days=DEFAULT_DAYS - 1)), ("to", args.end, now)):
        try:
            days[name] = (parse_time(text) if text else default).strftime("%Y-%m-%d")
        except ValueError as e:
            print(f"waygps stats: --{name}: {e}", file=err)
            return 2
    if days["from"] > days["to"]:
        print(f"waygps stats: --from: must not be after --to ({days['from']} > {days['to']})", file=err)
        return 2
    client = connect(config, args.timeout)
    try:
        docs = list(client[config.mongodb.database][config.stats.collection]
                    .find(day_filter(days["from"], days["to"], args.listener)).sort([("day", 1), ("listener", 1)]))
    except PyMongoError as e:
        print(f"waygps stats: MongoDB at {redact(mongo_uri(config))}: {e}", file=err)
        return 1
    finally:
        client.close()
    rows = [daily(doc) for doc in docs]
    if args.json:
        out.write(json.dumps({"from": days["from"], "to": days["to"], "days": rows}, indent=2) + "\n")
        return 0
    if not rows:
        print(f"no reception statistics from {days['from']} to {days['to']}", file=out)
        return 0
    out.write(render_table(rows))
    return 0
