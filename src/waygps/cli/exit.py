"""Stopping the reactor with a chosen exit status (twistd itself always exits 0)."""

from __future__ import annotations

import os
import sys
from typing import Any


def stop_with_status(reactor: Any, status: int) -> None:
    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    reactor.addSystemEventTrigger("after", "shutdown", leave)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)
