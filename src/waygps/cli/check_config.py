"""``waygps check-config``: load the file as the server would and say what it found."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: Any) -> int:
    from waygps.store.connection import redact

    store = f"MongoDB {redact(config.mongodb.uri)}" if config.mongodb.uri else (
        f"embedded SecantusDB on {config.embedded.host}:{config.embedded.port}, data in {config.embedded.data_dir}")
    print(f"{args.config}: OK")
    print(f"  store: {store}, database {config.mongodb.database}")
    for listener in config.listeners:
        print(f"  listener {listener.name}: {listener.driver} on {listener.transport} {listener.host}:{listener.port}")
    print(f"  web: {config.websocket.host}:{config.websocket.port}, WebSocket at {config.websocket.path}, "
          f"{len(config.websocket.tokens)} token(s), /metrics and /health "
          f"{'behind [web] metrics_token' if config.web.metrics_token else 'open'}")
    return 0
