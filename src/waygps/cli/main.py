"""``waygps``: the offline tools beside the server (which runs under ``twistd waygps``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from waygps import __version__

# name -> (module, one-line help, needs the configuration file)
SUBCOMMANDS: dict[str, tuple[str, str, bool]] = {
    "decode": ("waygps.cli.decode", "decode a capture offline with any installed driver", False),
    "drivers": ("waygps.cli.drivers", "list the installed device drivers (built-in and plugins)", False),
    "check-config": ("waygps.cli.check_config", "validate a configuration file", True),
    "command": ("waygps.cli.command", "queue and list device commands (block, unblock, ...)", True),
    "device": ("waygps.cli.device", "register and list devices (the allow-list)", True),
    "status": ("waygps.cli.status", "a summary of a running server from its /metrics", False),
    "cleanup": ("waygps.cli.cleanup", "purge old position reports", True),
    "rejected": ("waygps.cli.rejected", "list rejected frames kept for diagnosis (FramesRejeitados)", True),
    "simulate": ("waygps.cli.simulate", "drive simulated GV50 / Teltonika / generic devices against a server", False),
    "history": ("waygps.cli.history", "export a device's track (gpx, csv, geojson, json)", True),
    "trips": ("waygps.cli.trips", "a device's trips and stops", True),
    "stats": ("waygps.cli.stats", "daily reception statistics per listener", True),
}

DEFAULT_CONFIG = "waygps.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waygps",
        description="WayGPS tools. The server itself runs with: twistd -n waygps --config FILE",
    )
    parser.add_argument("--version", action="version", version=f"waygps {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for name, (module_name, help_text, needs_config) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        child = sub.add_parser(name, help=help_text, description=help_text)
        if needs_config:
            child.add_argument(
                "-c", "--config", default=os.environ.get("WAYGPS_CONFIG", DEFAULT_CONFIG),
                help=f"configuration file (default: $WAYGPS_CONFIG or {DEFAULT_CONFIG})",
            )
        module.add_arguments(child)
        child.set_defaults(_module=module, _needs_config=needs_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand is None:
        parser.print_help()
        return 2
    config: Any = None
    if args._needs_config:
        from waygps.config import ConfigError, load
        from waygps.drivers import find_drivers

        try:
            config = load(args.config, find_drivers())
        except ConfigError as e:
            print(f"waygps: configuration error: {e}", file=sys.stderr)
            return 2
    try:
        return int(args._module.run(args, config) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
