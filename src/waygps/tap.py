"""The ``IServiceMaker`` behind ``twistd waygps`` (its plugin module is twisted/plugins/waygps_server.py)."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

from waygps.config import ConfigError, load


class Options(usage.Options):
    synopsis = "--config FILE"
    optParameters = [
        ["config", "c", None, "WayGPS configuration file (TOML)."],
        ["log-format", None, None, "'text' or 'json' (one JSON object per line); overrides [logging] format."],
    ]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        if self["log-format"] not in (None, "text", "json"):
            raise usage.UsageError("--log-format: expected text or json")


@implementer(IServiceMaker, IPlugin)
class WayGPSServiceMaker:
    tapname = "waygps"
    description = "WayGPS GPS tracking server: device drivers, MongoDB storage, WebSocket feed, commands."
    options = Options

    def makeService(self, options: Options) -> Any:
        from waygps.drivers import find_drivers
        from waygps.service import build_service

        drivers = find_drivers()
        try:
            config = load(options["config"], drivers)
        except ConfigError as e:
            # One line, no traceback, non-zero status: what an operator needs.
            sys.stderr.write(f"waygps: configuration error: {e}\n")
            sys.stderr.flush()
            raise SystemExit(2) from None
        service = build_service(config, drivers, exit_on_failure=True, tune_runtime=True)
        log_format = options["log-format"] or config.logging.format
        if log_format == "json" or config.logging.level != "info":
            # Replaces twistd's own observer; plain text at level info keeps twistd's (and --logfile).
            from waygps.logs import observed, observer

            return observed(service, observer(log_format, config.logging.level))
        return service


serviceMaker = WayGPSServiceMaker()
