"""`waygps status [--url URL]`: a compact summary of a running server, read from its ``/metrics``.

Reports per second and the store latency are the server's own last-minute
figures (``waygps_reports_stored_per_second``, ``waygps_store_batch_seconds_recent``),
so one scrape is enough and the command answers at once. With a configuration
file, the cluster lines follow: every instance's heartbeat document from the store.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from typing import Any, Iterable

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the server's metrics URL (default: http://127.0.0.1:<websocket port>"
                                      "/metrics, the port from the configuration, else 8000)")
    if not any("--config" in action.option_strings for action in parser._actions):
        parser.add_argument("-c", "--config", default=os.environ.get("WAYGPS_CONFIG"),
                            help="configuration file, read for the HTTP port "
                                 "(default: $WAYGPS_CONFIG; optional)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the server (default 5)")


def metrics_url(url: str | None, config: Any) -> str:
    if url:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        path = parts.path if parts.path not in ("", "/") else "/metrics"
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    websocket = getattr(config, "websocket", None)
    host = getattr(websocket, "host", "127.0.0.1")
    port = getattr(websocket, "port", 8000)
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def parse(text: str) -> Samples:
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((dict(sample.labels), float(sample.value)))
    return samples


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, ()))


def _by(samples: Samples, name: str, *labels: str) -> list[tuple[str, float]]:
    rows = [(" ".join(found.get(label, "?") for label in labels), value)
            for found, value in samples.get(name, ()) if value]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _breakdown(rows: Iterable[tuple[str, float]], limit: int = 4) -> str:
    rows = list(rows)
    if not rows:
        return ""
    shown = ", ".join(f"{name} {_number(value)}" for name, value in rows[:limit])
    more = f", +{len(rows) - limit} more" if len(rows) > limit else ""
    return f"  ({shown}{more})"


def summary(samples: Samples, url: str) -> list[str]:
    """The lines `waygps status` prints."""
    lines = [f"WayGPS  {url}"]

    def row(label: str, text: str) -> None:
        lines.append(f"{label:<20} {text}")

    row("devices online", _number(_total(samples, "waygps_devices_online")))
    open_rows = _by(samples, "waygps_connections_open", "listener")
    row("connections open", _number(_total(samples, "waygps_connections_open")) + _breakdown(open_rows))
    stored = _total(samples, "waygps_reports_stored_total")
    if "waygps_reports_stored_per_second" in samples:
        rate = f"{_total(samples, 'waygps_reports_stored_per_second'):.1f}/s over the last minute"
    else:
        rate = "rate unknown"
    row("reports", f"{rate}, {_number(stored)} stored since start")
    rejected = _total(samples, "waygps_frames_rejected_total")
    row("rejected frames", _number(rejected)
        + _breakdown(_by(samples, "waygps_frames_rejected_total", "driver", "reason")))
    refused = _total(samples, "waygps_connections_refused_total")
    row("refused",
        _number(refused) + _breakdown(_by(samples, "waygps_connections_refused_total", "listener", "reason")))
    if "waygps_store_batch_seconds_recent" in samples:
        recent = _total(samples, "waygps_store_batch_seconds_recent")
        latency = f"{recent * 1000:.1f} ms mean batch (last minute)"
    else:
        count = _total(samples, "waygps_store_batch_seconds_count")
        mean = _total(samples, "waygps_store_batch_seconds_sum") / count if count else 0.0
        latency = f"{mean * 1000:.1f} ms mean batch (since start)"
    queue = _number(_total(samples, "waygps_store_queue_depth"))
    failed = _number(_total(samples, "waygps_store_failures_total"))
    store = f"{latency}, queue {queue}, {failed} failed batches"
    if _total(samples, "waygps_store_backpressure"):
        store += ", DEVICE READS PAUSED (queue full)"
    row("store", store)
    row("websocket clients", _number(_total(samples, "waygps_websocket_clients")))
    row("commands pending", _number(_total(samples, "waygps_commands_pending")))
    return lines


def fetch(url: str, timeout: float, token: str = "") -> str:
    headers = {"Accept": "text/plain"}
    if token:
        headers["Authorization"] = f"Bearer {token}"  # [web] metrics_token
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode("utf-8")


def _config(args: argparse.Namespace, config: Any) -> Any:
    """The configuration given by the caller, else the one named by ``-c`` / ``$WAYGPS_CONFIG``, if any."""
    path = getattr(args, "config", None)
    if config is not None or getattr(args, "url", None) or not path:
        return config
    from waygps.config import load

    return load(path)


def run(args: argparse.Namespace, config: Any) -> int:
    from waygps.config import ConfigError

    try:
        config = _config(args, config)
    except ConfigError as error:
        print(f"waygps status: configuration error: {error}", file=sys.stderr)
        return 2
    url = metrics_url(getattr(args, "url", None), config)
    try:
        token = getattr(getattr(config, "web", None), "metrics_token", "") or os.environ.get(
            "WAYGPS_WEB_METRICS_TOKEN", "")
        text = fetch(url, getattr(args, "timeout", 5.0), token)
    except urllib.error.HTTPError as error:
        print(f"waygps status: {url} answered HTTP {error.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        print(f"waygps status: cannot reach {url}: {reason} (is the server running?)", file=sys.stderr)
        return 1
    try:
        samples = parse(text)
    except ValueError as error:
        print(f"waygps status: {url} did not answer Prometheus metrics: {error}", file=sys.stderr)
        return 1
    if "waygps_devices_online" not in samples:
        print(f"waygps status: {url} is not a WayGPS server (no waygps_devices_online)", file=sys.stderr)
        return 1
    print("\n".join(summary(samples, url)))
    if config is None and getattr(args, "config", None):
        try:  # --url and -c: the file names the store the cluster lines are read from
            from waygps.config import load

            config = load(args.config)
        except ConfigError as error:
            print(f"{'cluster':<20} instances unknown: configuration error: {error}")
    if config is not None and getattr(config, "path", ""):
        print("\n".join(cluster_summary(config, getattr(args, "timeout", 5.0))))
    return 0


def cluster_summary(config: Any, timeout: float) -> list[str]:
    """Every instance on the store (waygps.cluster.status); one line if the store cannot be read."""
    import time

    from waygps.cluster.status import cluster_lines, read_instances

    try:
        docs = read_instances(config, timeout)
    except Exception as error:
        return [f"{'cluster':<20} instances unknown: store not readable ({type(error).__name__})"]
    return cluster_lines(docs, time.time())
