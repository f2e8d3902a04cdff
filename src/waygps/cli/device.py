"""`waygps device add IMEI [--plate P] [--model M]` and `waygps device list`: the ``Veiculo`` allow-list.

A device is registered by having a ``Veiculo`` document with its IMEI; a
listener with ``accept_unknown_devices = false`` serves only registered
devices. These commands talk to the configured MongoDB directly (pymongo,
blocking). With the embedded store, the server must be running: the store
lives as its child process.

Exit status: 0 done, 1 the store could not be reached, 2 malformed arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone
from typing import Any, Sequence, TextIO

DEVICE_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")
PLATE_MAX = 20
MODEL_MAX = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_action", choices=("add", "list"), metavar="ACTION",
                        help="add: register a device (insert its Veiculo, or update its plate / model); "
                             "list: list registered devices")
    parser.add_argument("imei", nargs="?", metavar="IMEI",
                        help="for add: a 15-digit IMEI (or the id a generic device sends: letters, digits, "
                             "_ . -, up to 40)")
    parser.add_argument("--plate", help="add: licence plate (Veiculo.ds_placa)")
    parser.add_argument("--model", help="add: model / device name (Veiculo.ds_modelo)")
    parser.add_argument("--online", action="store_true", help="list: only devices marked online")
    parser.add_argument("--limit", type=int, default=0, help="list: at most this many (default: all)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def check_imei(imei: str) -> tuple[str | None, str | None]:
    """(error, warning) for a device id given on the command line."""
    if not DEVICE_ID.fullmatch(imei):
        expected = "a 15-digit IMEI, or letters, digits, _ . - up to 40"
        return f"not a device id: {imei!r} (expected {expected})", None
    if imei.isdigit() and len(imei) == 15 and not luhn_ok(imei):
        return None, f"{imei}: the IMEI check digit does not match (registered anyway; check for a typo)"
    if imei.isdigit() and len(imei) != 15:
        return None, f"{imei}: {len(imei)} digits, an IMEI has 15 (registered anyway)"
    return None, None


def _text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        raise ValueError(f"--{name}: expected printable text of 1 to {limit} characters, got {value!r}")
    return value


def mongo_uri(config: Any) -> str:
    if config.mongodb.uri:
        return config.mongodb.uri
    return f"mongodb://{config.embedded.host}:{config.embedded.port}/"


def _collection(config: Any, timeout: float) -> tuple[Any, Any]:
    import pymongo

    client = pymongo.MongoClient(mongo_uri(config), serverSelectionTimeoutMS=int(timeout * 1000),
                                 connectTimeoutMS=int(timeout * 1000), tz_aware=True)
    return client, client[config.mongodb.database][config.mongodb.collections.vehicles]


def add(vehicles: Any, imei: str, plate: str | None, model: str | None) -> str:
    """Insert or update the ``Veiculo`` of ``imei``; returns ``added``, ``updated`` or ``unchanged``."""
    update: dict[str, Any] = {"$setOnInsert": {"IMEI": imei, "online": False}}
    changes = {}
    if plate is not None:
        changes["ds_placa"] = plate
    if model is not None:
        changes["ds_modelo"] = model
    if changes:
        update["$set"] = changes
    result = vehicles.update_one({"IMEI": imei}, update, upsert=True)
    if result.upserted_id is not None:
        return "added"
    return "updated" if result.modified_count else "unchanged"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return "-"


def table(documents: Sequence[dict[str, Any]]) -> list[str]:
    header = ("IMEI", "PLATE", "MODEL", "PROTOCOL", "ONLINE", "LAST SEEN")
    rows = [header]
    for doc in documents:
        rows.append((
            str(doc.get("IMEI", "?")),
            str(doc.get("ds_placa") or "-"),
            str(doc.get("ds_modelo") or "-"),
            str(doc.get("protocol") or "-"),
            "yes" if doc.get("online") else "no",
            _when(doc.get("lastSeen")),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def run(args: argparse.Namespace, config: Any, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    action = args.device_action
    if action == "add":
        if args.imei is None:
            print("waygps device add: expected an IMEI", file=err)
            return 2
        if args.online or args.limit:
            print("waygps device add: --online and --limit belong to `device list`", file=err)
            return 2
        error, warning = check_imei(args.imei)
        if error:
            print(f"waygps device add: {error}", file=err)
            return 2
        try:
            plate = _text("plate", args.plate, PLATE_MAX)
            model = _text("model", args.model, MODEL_MAX)
        except ValueError as e:
            print(f"waygps device add: {e}", file=err)
            return 2
        if warning:
            print(f"waygps device add: warning: {warning}", file=err)
    else:
        if args.imei is not None or args.plate is not None or args.model is not None:
            print("waygps device list: takes no IMEI, --plate or --model", file=err)
            return 2
        if args.limit < 0:
            print("waygps device list: --limit must be zero or more", file=err)
            return 2
    if args.timeout <= 0:
        print("waygps device: --timeout must be greater than zero", file=err)
        return 2

    import pymongo.errors

    client, vehicles = _collection(config, args.timeout)
    try:
        if action == "add":
            outcome = add(vehicles, args.imei, plate, model)
            print(f"{args.imei}: {outcome}", file=out)
        else:
            query = {"online": True} if args.online else {}
            projection = {"_id": 0, "IMEI": 1, "ds_placa": 1, "ds_modelo": 1, "protocol": 1, "online": 1,
                          "lastSeen": 1}
            cursor = vehicles.find(query, projection).sort("IMEI", 1)
            if args.limit:
                cursor = cursor.limit(args.limit)
            documents = list(cursor)
            for line in table(documents):
                print(line, file=out)
            print(f"{len(documents)} device(s)", file=out)
    except pymongo.errors.ServerSelectionTimeoutError:
        hint = "" if config.mongodb.uri else " (the embedded store runs only while `twistd waygps` runs)"
        print(f"waygps device: cannot reach MongoDB at {_redacted(mongo_uri(config))}{hint}", file=err)
        return 1
    except pymongo.errors.PyMongoError as e:
        print(f"waygps device: MongoDB error: {e}", file=err)
        return 1
    finally:
        client.close()
    return 0


def _redacted(uri: str) -> str:
    from waygps.store.connection import redact

    return redact(uri)
