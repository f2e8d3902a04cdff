"""``waygps trips IMEI --from --to [--stops] [--json]``: a device's trips (and stops) as a table.

The same rules as the API (``[history]`` thresholds), over the track read
batch by batch. Exit status: 0 done, 1 the store failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from waygps.cli.history import add_range_arguments, connect, parse_range
from waygps.history.query import TrackQuery
from waygps.history.source import iter_batches
from waygps.history.trips import Stop, Trip, TripDetector, TripRules, iso, stop_json, trip_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_range_arguments(parser)
    parser.add_argument("--stops", action="store_true", help="list the stops between trips too")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _place(lat: float, lon: float) -> str:
    return f"{lat:.5f},{lon:.5f}"


def table(found: list[Trip | Stop], with_stops: bool) -> str:
    rows = [("kind", "start", "end", "duration", "km", "odo km", "max km/h", "avg km/h", "from", "to")]
    for record in found:
        if isinstance(record, Trip):
            rows.append(("trip", iso(record.start.time) or "", iso(record.end.time) or "",
                         _duration(record.duration_s), f"{record.distance_m / 1000:.2f}",
                         "-" if record.odometer_distance_m is None else f"{record.odometer_distance_m / 1000:.2f}",
                         f"{record.max_speed_kmh:.0f}", f"{record.average_speed_kmh:.0f}",
                         _place(record.start.latitude, record.start.longitude),
                         _place(record.end.latitude, record.end.longitude)))
        elif with_stops:
            place = _place(record.latitude, record.longitude)
            rows.append(("stop", iso(record.start) or "", iso(record.end) or "", _duration(record.duration_s),
                         "", "", "", "", place, place))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows) + "\n"


def run(args: argparse.Namespace, config: Any, now: datetime | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    from pymongo.errors import PyMongoError

    from waygps.cli.cleanup import mongo_uri
    from waygps.store.connection import redact

    out = out or sys.stdout
    err = err or sys.stderr
    span = parse_range(args, now or datetime.now(timezone.utc), err, "trips")
    if span is None:
        return 2
    rules = TripRules.from_config(config.history)
    detector = TripDetector(rules)
    client = connect(config, args.timeout)
    try:
        collection = client[config.mongodb.database][config.mongodb.collections.positions]
        for batch in iter_batches(collection, TrackQuery(args.imei, span[0], span[1], valid=True),
                                  config.history.batch_size):
            for point in batch:
                detector.add(point)
    except PyMongoError as e:
        print(f"waygps trips: MongoDB at {redact(mongo_uri(config))}: {e}", file=err)
        return 1
    finally:
        client.close()
    detector.finish()
    found = detector.take()
    trips = [r for r in found if isinstance(r, Trip)]
    if args.json:
        body: dict[str, Any] = {"imei": args.imei, "from": iso(span[0]), "to": iso(span[1]),
                                "trips": [trip_json(t) for t in trips]}
        if args.stops:
            body["stops"] = [stop_json(s) for s in found if isinstance(s, Stop)]
        out.write(json.dumps(body, indent=2) + "\n")
        return 0
    print(f"{args.imei}: {len(trips)} trips, {sum(t.distance_m for t in trips) / 1000:.2f} km, "
          f"{iso(span[0])} .. {iso(span[1])}", file=out)
    if found:
        out.write(table(found, args.stops))
    return 0
