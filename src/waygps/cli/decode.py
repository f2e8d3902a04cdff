"""``waygps decode --driver NAME [--hex] [--udp] [FILE|-]``: check a capture offline.

Without ``--hex`` the input is one byte stream (a text protocol's capture).
With ``--hex`` each line is one capture on its own, written in hexadecimal: a
TCP session's bytes from its start, or (with ``--udp``) one datagram. One
JSON object per event goes to stdout; rejected input goes to stderr with the
reason, and the exit status is 1 if anything was rejected.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any, BinaryIO

from waygps.actions import Close, Flagged, Rejected
from waygps.documents import event_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--driver", required=True, help="driver name (see `waygps drivers`)")
    parser.add_argument("--hex", action="store_true", help="each input line is one capture in hex")
    parser.add_argument("--udp", action="store_true", help="captures are UDP datagrams (with --hex)")
    parser.add_argument("--now", help="receive time to assume, ISO 8601 (default: now)")
    parser.add_argument("file", nargs="?", default="-", help="capture file, or - for stdin (default)")


def _open(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    return open(name, "rb")


def _excerpt(data: bytes) -> str:
    from waygps.drivers.base import escaped

    return escaped(data, 80)


def run(args: argparse.Namespace, config: Any) -> int:
    from waygps.drivers import find_drivers

    drivers = find_drivers()
    driver = drivers.get(args.driver)
    if driver is None:
        print(f"waygps decode: unknown driver {args.driver!r}; installed: {', '.join(sorted(drivers)) or 'none'}",
              file=sys.stderr)
        return 2
    transport = "udp" if args.udp else "tcp"
    if transport not in driver.transports:
        print(f"waygps decode: driver {args.driver!r} does not serve {transport}", file=sys.stderr)
        return 2
    if args.udp and not args.hex:
        print("waygps decode: --udp needs --hex (one datagram per line)", file=sys.stderr)
        return 2
    if args.now:
        try:
            now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            print(f"waygps decode: --now: not an ISO 8601 time: {args.now!r}", file=sys.stderr)
            return 2
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
    else:
        now = datetime.now(timezone.utc)
    try:
        stream = _open(args.file)
    except OSError as e:
        print(f"waygps decode: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    with stream:
        data = stream.read()

    captures: list[tuple[int | None, bytes]] = []
    if args.hex:
        for number, line in enumerate(data.splitlines(), 1):
            text = line.strip().replace(b" ", b"")
            if not text or text.startswith(b"#"):
                continue
            try:
                captures.append((number, bytes.fromhex(text.decode("ascii"))))
            except (ValueError, UnicodeDecodeError):
                print(f"line {number}: not hexadecimal: {_excerpt(line)}", file=sys.stderr)
                return 2
    else:
        captures.append((None, data))

    rejected = 0
    out = sys.stdout
    for number, capture in captures:
        for item in driver.decode(capture, now, transport):
            if isinstance(item, Flagged):
                where = f"line {number}: " if number is not None else ""
                print(f"{where}note ({item.reason}), kept: {_excerpt(item.excerpt)}", file=sys.stderr)
                continue
            if isinstance(item, (Rejected, Close)):
                rejected += 1
                where = f"line {number}: " if number is not None else ""
                excerpt = getattr(item, "excerpt", b"")
                detail = f": {_excerpt(excerpt)}" if excerpt else ""
                print(f"{where}rejected ({item.reason}){detail}", file=sys.stderr)
                continue
            obj = event_json(item)
            if number is not None:
                obj["capture"] = number
            out.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")
    return 1 if rejected else 0
