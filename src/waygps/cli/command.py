"""``waygps command``: queue, list, show and cancel device commands in the configured MongoDB.

The running server delivers what is queued here (see docs/commands.md). This
tool talks to MongoDB directly (pymongo, synchronous), so it works from any
machine that reaches the store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

EXAMPLES = """\
examples:
  waygps command send 862894020180553 block
  waygps command send 862894020180553 set-server tracking.example.com:5004
  waygps command send 862894020180553 set-apn internet.op user secret
  waygps command send 862894020180553 custom 'AT+GTRTO=gv50,8,,,,,,0001$' --wait 90
  waygps command list 862894020180553 --status pending
  waygps command show 6b06a14af00170c3f12b58f0
"""

ACTIONS = ("block", "unblock", "reboot", "request-position", "set-server", "set-apn", "custom")

# Exit statuses.
OK = 0
FAILURE = 1
USAGE = 2


class UsageError(Exception):
    """Malformed arguments or an unknown device: exit status 2."""


class Refused(Exception):
    """The device's driver would refuse the command: exit status 1, nothing queued."""


class StoreUnavailable(Exception):
    """MongoDB could not be reached: exit status 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    sub = parser.add_subparsers(dest="action", metavar="ACTION")

    send = sub.add_parser(
        "send", help="queue a command for a device", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Queue a command for a device; the server holding its connection sends it.",
        epilog="commands: block | unblock | reboot | request-position | set-server HOST:PORT |\n"
               "          set-apn APN [USER PASSWORD] | custom TEXT\n\n" + EXAMPLES)
    send.add_argument("imei", metavar="IMEI")
    send.add_argument("what", metavar="COMMAND", choices=ACTIONS)
    send.add_argument("arguments", metavar="ARG", nargs="*", help="the command's arguments")
    send.add_argument("--expires-hours", type=float, default=None, metavar="H",
                      help="give up if not delivered within H hours (default: [commands] expiry_hours)")
    send.add_argument("--device-password", default="", metavar="PW",
                      help="the device's own command password, when it differs from the listener's")
    send.add_argument("--force", action="store_true",
                      help="an engine cut (block, or a custom command that sets an output) may go out while the "
                           "vehicle's movement is unknown (no recent speed); never while it is known to move. "
                           "Logged and recorded in the command")
    send.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="wait up to SECONDS for the outcome, printing each status change; exit 0 only "
                           "when confirmed")

    listing = sub.add_parser("list", help="list commands, newest first",
                             description="List commands, newest first.")
    listing.add_argument("imei", metavar="IMEI", nargs="?")
    listing.add_argument("--status", choices=("pending", "sent", "confirmed", "failed", "expired", "open"),
                         help="only this status (open = pending or sent)")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N commands (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = sub.add_parser("show", help="one command with its history", description="One command with its history.")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the document as JSON")

    cancel = sub.add_parser("cancel", help="cancel a pending command",
                            description="Cancel a pending command (marked failed, reason 'cancelled'). A sent "
                                        "command cannot be called back: wait for its answer.")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--reason", default="", help="why, for the history")


# --- parsing ------------------------------------------------------------------

def parse_command(what: str, arguments: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``send``'s COMMAND and ARGs -> (type, params); raises :class:`UsageError`."""
    from waygps.commands.record import InvalidCommand, normalize, parse_server

    def count(low: int, high: int, usage: str) -> None:
        if not low <= len(arguments) <= high:
            raise UsageError(f"usage: waygps command send IMEI {usage}")

    try:
        if what in ("block", "unblock", "reboot", "request-position"):
            count(0, 0, what)
            return what.replace("-", "_"), {}
        if what == "set-server":
            count(1, 1, "set-server HOST:PORT")
            return "set_server", parse_server(arguments[0])
        if what == "set-apn":
            if len(arguments) not in (1, 3):
                raise UsageError("usage: waygps command send IMEI set-apn APN [USER PASSWORD]")
            apn, user, password = (list(arguments) + ["", ""])[:3]
            return "set_apn", normalize("set_apn", {"apn": apn, "user": user, "password": password})
        if what == "custom":
            if not arguments:
                raise UsageError("usage: waygps command send IMEI custom TEXT")
            return "custom", normalize("custom", {"text": " ".join(arguments)})
    except InvalidCommand as e:
        raise UsageError(f"{what}: {e}") from None
    raise UsageError(f"unknown command {what!r} (one of {', '.join(ACTIONS)})")


def check_imei(imei: str) -> str:
    if not imei or len(imei) > 64 or any(c.isspace() or ord(c) < 32 for c in imei):
        raise UsageError(f"malformed IMEI {imei!r}")
    return imei


# --- store --------------------------------------------------------------------

def store_uri(config: Any) -> str:
    if config.mongodb.uri:
        return config.mongodb.uri
    return f"mongodb://{config.embedded.host}:{config.embedded.port}/"


def open_db(config: Any) -> Any:
    import pymongo
    from pymongo.errors import PyMongoError

    from waygps.store.connection import redact

    uri = store_uri(config)
    client = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=int(config.mongodb.connect_timeout * 1000))
    try:
        client.admin.command("ping")
    except PyMongoError as e:
        client.close()
        hint = "" if config.mongodb.uri else " (the embedded store runs only while the server runs)"
        raise StoreUnavailable(f"cannot reach MongoDB at {redact(uri)}{hint}: {type(e).__name__}") from None
    return client, client[config.mongodb.database]


def find_command(db: Any, config: Any, command_id: str) -> Any:
    from waygps.commands.queue import id_candidates

    doc = db[config.mongodb.collections.commands].find_one({"_id": {"$in": id_candidates(command_id)}})
    if doc is None:
        raise UsageError(f"no command {command_id}")
    return doc


# --- output -------------------------------------------------------------------

def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def describe(doc: Mapping[str, Any]) -> str:
    """The type with its parameters, short."""
    params = doc.get("params") or {}
    kind = str(doc.get("type"))
    if kind == "set_server" and "host" in params:
        return f"set_server {params.get('host')}:{params.get('port')}"
    if kind == "set_apn":
        return f"set_apn {params.get('apn')}"
    if kind == "custom":
        text = str(params.get("text", ""))
        return f"custom {text[:30]}{'...' if len(text) > 30 else ''}"
    return kind


def last_reason(doc: Mapping[str, Any]) -> str:
    if doc.get("waiting") and doc.get("status") == "pending":
        return f"waiting: {doc['waiting']}"
    history = doc.get("history") or []
    if history and isinstance(history[-1], Mapping):
        return str(history[-1].get("reason", ""))
    return str(doc.get("error") or "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _when(value).replace(" ", "T") + "Z"
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def print_table(docs: Sequence[Mapping[str, Any]], out: Any) -> None:
    rows = [("ID", "IMEI", "COMMAND", "STATUS", "TRIES", "CREATED (UTC)", "LAST CHANGE")]
    for doc in docs:
        rows.append((str(doc.get("_id")), str(doc.get("IMEI")), describe(doc), str(doc.get("status")),
                     str(doc.get("attempts") or 0), _when(doc.get("createdAt")), last_reason(doc)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        print("  ".join(cells + [row[-1]]), file=out)


def print_detail(doc: Mapping[str, Any], out: Any) -> None:
    print(f"command   {doc.get('_id')}", file=out)
    print(f"device    {doc.get('IMEI')}", file=out)
    print(f"type      {describe(doc)}", file=out)
    print(f"status    {doc.get('status')}" + (f" (waiting: {doc['waiting']})" if doc.get("waiting") else ""), file=out)
    print(f"attempts  {doc.get('attempts') or 0}, serial {doc.get('serial') or '-'}", file=out)
    print(f"created   {_when(doc.get('createdAt'))}   expires {_when(doc.get('expiresAt'))}", file=out)
    print(f"sent      {_when(doc.get('sentAt'))}   confirmed {_when(doc.get('confirmedAt'))}", file=out)
    if doc.get("response"):
        print(f"response  {doc['response']}", file=out)
    if doc.get("error"):
        print(f"error     {doc['error']}", file=out)
    if doc.get("frame"):
        print(f"frame     {doc['frame']}", file=out)
    print("history:", file=out)
    for entry in doc.get("history") or []:
        if isinstance(entry, Mapping):
            print(f"  {_when(entry.get('at'))}  {str(entry.get('status')):<9}  {entry.get('reason', '')}", file=out)


# --- actions ------------------------------------------------------------------

def prepare_send(args: argparse.Namespace, config: Any) -> tuple[str, str, dict[str, Any], float]:
    imei = check_imei(args.imei)
    command_type, params = parse_command(args.what, args.arguments)
    if args.device_password:
        from waygps.commands.record import InvalidCommand, normalize

        try:
            params = normalize(command_type, {**params, "device_password": args.device_password})
        except InvalidCommand as e:
            raise UsageError(str(e)) from None
    expiry = config.commands.expiry_hours if args.expires_hours is None else args.expires_hours
    if expiry <= 0:
        raise UsageError("--expires-hours must be greater than zero")
    return imei, command_type, params, expiry


def prepare_list(args: argparse.Namespace) -> None:
    if args.imei:
        check_imei(args.imei)
    if args.limit <= 0:
        raise UsageError("--limit must be greater than zero")


def do_send(args: argparse.Namespace, config: Any, db: Any, out: Any) -> int:
    from waygps.commands.record import FINAL, new_command

    imei, command_type, params, expiry = prepare_send(args, config)
    names = config.mongodb.collections
    vehicle = db[names.vehicles].find_one({"IMEI": imei}, {"_id": 1, "protocol": 1})
    if vehicle is None:
        raise UsageError(f"unknown IMEI {imei}: no such device in {names.vehicles}")
    from waygps.commands.checks import check_with_driver

    protocol = vehicle.get("protocol")
    refusal = check_with_driver(protocol, imei, command_type, params)
    if refusal is not None:
        raise Refused(refusal)
    now = datetime.now(timezone.utc)
    reason = "queued by waygps command" + (" with --force (speed guard override when movement is unknown)"
                                           if args.force else "")
    doc = new_command(imei, command_type, params, now, expiry, source="cli", reason=reason, force=args.force)
    db[names.commands].insert_one(doc)
    if args.force:
        print(f"warning: --force: if {imei}'s movement is unknown when it is sent, this command goes out without "
              f"the speed guard (recorded in the command)", file=sys.stderr)
    print(f"queued {describe(doc)} for {imei}: command {doc['_id']} (pending, expires {_when(doc['expiresAt'])} UTC)",
          file=out)
    if args.wait <= 0:
        return OK
    deadline = time.monotonic() + args.wait
    seen = 1
    current = doc
    while True:
        current = db[names.commands].find_one({"_id": doc["_id"]}) or current
        history = current.get("history") or []
        for entry in history[seen:]:
            print(f"  {_when(entry.get('at'))}  {str(entry.get('status')):<9}  {entry.get('reason', '')}", file=out)
        seen = max(seen, len(history))
        if current.get("status") in FINAL or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    status = current.get("status")
    if status not in FINAL:
        print(f"still {status} after {args.wait:g} s; follow it with: waygps command show {doc['_id']}", file=out)
    return OK if status == "confirmed" else FAILURE


def do_list(args: argparse.Namespace, config: Any, db: Any, out: Any) -> int:
    query: dict[str, Any] = {}
    if args.imei:
        query["IMEI"] = check_imei(args.imei)
    if args.status == "open":
        query["status"] = {"$in": ["pending", "sent"]}
    elif args.status:
        query["status"] = args.status
    docs = list(db[config.mongodb.collections.commands].find(query).sort([("createdAt", -1), ("_id", -1)])
                .limit(args.limit))
    if args.json:
        for doc in docs:
            print(json.dumps(_jsonable(doc), ensure_ascii=False), file=out)
        return OK
    if not docs:
        print("no commands" + (f" for {args.imei}" if args.imei else "") +
              (f" with status {args.status}" if args.status else ""), file=out)
        return OK
    print_table(docs, out)
    return OK


def do_show(args: argparse.Namespace, config: Any, db: Any, out: Any) -> int:
    doc = find_command(db, config, args.id)
    if args.json:
        print(json.dumps(_jsonable(doc), ensure_ascii=False, indent=2), file=out)
    else:
        print_detail(doc, out)
    return OK


def do_cancel(args: argparse.Namespace, config: Any, db: Any, out: Any) -> int:
    from pymongo import ReturnDocument

    from waygps.commands.record import FAILED, PENDING, push_history

    doc = find_command(db, config, args.id)
    names = config.mongodb.collections
    if doc.get("status") != PENDING:
        print(f"waygps command: command {doc['_id']} is {doc.get('status')}, only a pending command can be "
              f"cancelled", file=sys.stderr)
        return FAILURE
    now = datetime.now(timezone.utc)
    reason = "cancelled by waygps command" + (f": {args.reason}" if args.reason else "")
    intent = doc.get("intent") or {}
    if intent.get("field"):
        # Otherwise the intent would queue the same command again.
        db[names.vehicles].update_one({"IMEI": doc["IMEI"], intent["field"]: intent.get("value")},
                                      {"$set": {intent["field"]: None}})
    done = db[names.commands].find_one_and_update(
        {"_id": doc["_id"], "status": PENDING},
        {"$set": {"status": FAILED, "error": reason, "updatedAt": now}, "$push": push_history(FAILED, now, reason),
         "$unset": {"intentOpen": "", "waiting": "", "waitingFor": ""}},
        return_document=ReturnDocument.AFTER)
    if done is None:
        print(f"waygps command: command {doc['_id']} changed meanwhile; see waygps command show {doc['_id']}",
              file=sys.stderr)
        return FAILURE
    print(f"cancelled command {doc['_id']} ({describe(doc)} for {doc['IMEI']})", file=out)
    return OK


def run(args: argparse.Namespace, config: Any) -> int:
    handlers = {"send": do_send, "list": do_list, "show": do_show, "cancel": do_cancel}
    if args.action not in handlers:
        print("usage: waygps command {send,list,show,cancel} ... (waygps command --help)", file=sys.stderr)
        return USAGE
    try:
        # Arguments first: a malformed one is exit status 2 even when the store is down.
        if args.action == "send":
            prepare_send(args, config)
        elif args.action == "list":
            prepare_list(args)
    except UsageError as e:
        print(f"waygps command: {e}", file=sys.stderr)
        return USAGE
    try:
        client, db = open_db(config)
    except StoreUnavailable as e:
        print(f"waygps command: {e}", file=sys.stderr)
        return FAILURE
    try:
        return handlers[args.action](args, config, db, sys.stdout)
    except UsageError as e:
        print(f"waygps command: {e}", file=sys.stderr)
        return USAGE
    except Refused as e:
        print(f"waygps command: not queued: {e}", file=sys.stderr)
        return FAILURE
    except Exception as e:  # a store error in mid-operation: one line, not a traceback
        from pymongo.errors import PyMongoError

        if isinstance(e, PyMongoError):
            print(f"waygps command: MongoDB error: {e}", file=sys.stderr)
            return FAILURE
        raise
    finally:
        client.close()
