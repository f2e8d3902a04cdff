"""``waygps simulate``: drive a fleet of simulated devices against a running WayGPS.

    waygps simulate --driver gv50 --devices 50 --interval 5 127.0.0.1:5004

A live progress line goes to stderr (rewritten in place on a terminal, one
line every ``--progress`` seconds otherwise); at the end a summary table goes
to stdout, or with ``--json`` one JSON object with the same figures. Ctrl-C
(SIGINT) or SIGTERM stops the fleet cleanly: connections are closed and the
summary is printed. Exit status: 0, or 1 when reports were left unacknowledged
in a ``--reports`` run, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any



def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _center(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON, got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"LAT,LON out of range: {text!r}")
    return lat, lon


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from waygps.simulate import MODELS

    parser.add_argument("target", type=_target, metavar="HOST:PORT",
                        help="the WayGPS listener of the driver (in examples/waygps.toml: 127.0.0.1:8081 gv50, "
                             "8080 teltonika, 8082 generic)")
    parser.add_argument("--driver", choices=sorted(MODELS), default="gv50", help="device protocol (default gv50)")
    parser.add_argument("--devices", type=int, default=10, help="simulated devices, one connection each (default 10)")
    parser.add_argument("--interval", type=_positive, default=10.0,
                        help="seconds between a device's reports (default 10; 0 = next report as soon as the "
                             "last one is acknowledged)")
    end = parser.add_mutually_exclusive_group()
    end.add_argument("--duration", type=_positive, help="stop after this many seconds (default: until Ctrl-C)")
    end.add_argument("--reports", type=int, help="reports per device, then wait for their acknowledgements and stop")
    parser.add_argument("--udp", action="store_true", help="send over UDP instead of TCP")
    parser.add_argument("--ramp-up", type=_positive, default=None,
                        help="seconds over which the devices connect (default: devices / 200, at most 30)")
    parser.add_argument("--ack-timeout", type=_positive, default=20.0,
                        help="seconds before an unacknowledged report is sent again (default 20)")
    parser.add_argument("--heartbeat", type=_positive, default=60.0,
                        help="seconds of idle link before a heartbeat (default 60; 0 = none)")
    parser.add_argument("--password", default="gv50", help="GV50 command password the devices accept (default gv50)")
    parser.add_argument("--gpx", help="drive along the tracks (or routes) of this GPX file")
    parser.add_argument("--center", type=_center, default=(-17.7833, -63.1821),
                        help="LAT,LON around which tracks start (default Santa Cruz de la Sierra)")
    parser.add_argument("--spread-km", type=_positive, default=10.0, help="radius of the start points (default 10)")
    parser.add_argument("--first-device", type=int, default=0, help="number of the first device (IMEIs follow it)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the tracks (default 1)")
    parser.add_argument("--progress", type=_positive, default=None,
                        help="seconds between progress lines (default 1 on a terminal, 10 otherwise; 0 = none)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _options(args: argparse.Namespace) -> Any:
    from waygps.simulate.device import DeviceSettings
    from waygps.simulate.fleet import FleetOptions
    from waygps.simulate.track import load_gpx

    if args.devices < 1:
        raise ValueError("--devices must be at least 1")
    if args.reports is not None and args.reports < 1:
        raise ValueError("--reports must be at least 1")
    route = load_gpx(args.gpx) if args.gpx else None
    ramp = args.ramp_up if args.ramp_up is not None else min(30.0, args.devices / 200)
    host, port = args.target
    settings = DeviceSettings(ack_timeout=max(args.ack_timeout, 0.1), heartbeat=args.heartbeat, udp=args.udp,
                              password=args.password)
    return FleetOptions(driver=args.driver, host=host, port=port, devices=args.devices, interval=args.interval,
                        duration=args.duration, reports=args.reports, udp=args.udp, ramp_up=ramp,
                        settings=settings, seed=args.seed, center=args.center, spread_km=args.spread_km,
                        route=route, first_device=args.first_device,
                        tick=min(1.0, max(0.25, args.devices / 4000)))  # one pass over the fleet per tick


def summary_table(summary: dict[str, Any], options: Any) -> str:
    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:,.1f} ms"

    rows = [
        ("driver", f"{options.driver} over {'UDP' if options.udp else 'TCP'} to {options.host}:{options.port}"),
        ("devices", f"{summary['devices']:,} ({summary['connects']:,} connections opened, "
                    f"{summary['disconnects']:,} lost, {summary['connect_failures']:,} failed)"),
        ("run time", f"{summary['seconds']:,.1f} s"),
        ("reports sent", f"{summary['sent']:,} ({summary['sent_per_second']:,.1f}/s)"),
        ("reports acknowledged", f"{summary['acked']:,} ({summary['acked_per_second']:,.1f}/s)"),
        ("re-sent", f"{summary['resent']:,}"),
        ("unacknowledged at the end", f"{summary['unacknowledged']:,}"),
        ("rejected (ERR / short count)", f"{summary['rejected']:,}"),
        ("ack latency p50 / p99", f"{ms(summary['ack_latency_p50_ms'])} / {ms(summary['ack_latency_p99_ms'])}"),
        ("heartbeats (answered)", f"{summary['heartbeats']:,} ({summary['heartbeat_acks']:,})"),
        ("commands received (answered)", f"{summary['commands']:,} ({summary['command_answers']:,})"),
        ("unexpected server bytes", f"{summary['unexpected']:,}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args: argparse.Namespace, config: Any) -> int:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from waygps.simulate.fleet import Fleet
    from waygps.simulate.stats import Window

    try:
        options = _options(args)
    except (ValueError, OSError) as e:
        print(f"waygps simulate: {e}", file=sys.stderr)
        return 2
    from waygps.config import RuntimeConfig
    from waygps.runtime import tune_collector

    tune_collector(RuntimeConfig())  # thousands of connections with reports in flight, like the server
    fleet = Fleet(reactor, options)
    tty = sys.stderr.isatty()
    every = args.progress if args.progress is not None else (1.0 if tty else 10.0)
    window = Window(fleet.stats, reactor.seconds())
    printed = {"live": False}

    def progress() -> None:
        line = window.line(reactor.seconds())
        if tty:
            sys.stderr.write("\r\x1b[K" + line)
            printed["live"] = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    progress_call = LoopingCall(progress) if every else None
    outcome: dict[str, Any] = {}

    def finished(result: Any) -> None:
        if progress_call is not None and progress_call.running:
            progress_call.stop()
        outcome["result"] = result
        if reactor.running:
            reactor.stop()

    def interrupted(signum: int, frame: Any) -> None:
        # Ctrl-C / SIGTERM: stop the fleet (connections closed), then the reactor.
        reactor.callFromThread(fleet.stop)

    reactor.callWhenRunning(lambda: fleet.start().addBoth(finished))
    if progress_call is not None:
        reactor.callWhenRunning(progress_call.start, every, False)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    reactor.run(installSignalHandlers=False)
    if printed["live"]:
        sys.stderr.write("\n")
    result = outcome.get("result")
    if result is not None and not hasattr(result, "summary"):
        print(f"waygps simulate: {result.getErrorMessage() if hasattr(result, 'getErrorMessage') else result}",
              file=sys.stderr)
        return 1
    summary = fleet.stats.summary(reactor.seconds())
    summary["driver"] = options.driver
    summary["transport"] = "udp" if options.udp else "tcp"
    if args.json:
        print(json.dumps(summary))
    else:
        print(summary_table(summary, options))
    sys.stdout.flush()
    return 1 if options.reports is not None and summary["unacknowledged"] else 0
