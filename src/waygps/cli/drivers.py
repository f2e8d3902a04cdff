"""``waygps drivers``: what `getPlugins(IDriver)` finds."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: Any) -> int:
    from waygps.drivers import find_drivers

    drivers = find_drivers()
    if not drivers:
        print("no drivers installed", file=sys.stderr)
        return 1
    for name, driver in sorted(drivers.items()):
        transports = ",".join(sorted(driver.transports))
        module = type(driver).__module__ if type(driver).__module__ != "waygps.drivers.base" else ""
        print(f"{name:<12} {transports:<8} {driver.description}{'  (' + module + ')' if module else ''}")
    return 0
