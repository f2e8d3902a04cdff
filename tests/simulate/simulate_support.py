"""Helpers of the simulator tests: models on a fixed clock, and the drivers' real codecs."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any

from waygps.actions import Send, Store
from waygps.events import Position
from waygps.simulate import MODELS
from waygps.simulate.device import DeviceSettings, imei_of
from waygps.simulate.stats import Stats
from waygps.simulate.track import Track

T0 = 1_790_000_000.0


def model(driver: str, index: int = 1, **settings: Any) -> Any:
    rng = random.Random(index)
    track = Track(rng, T0, -17.78, -63.18)
    return MODELS[driver](imei_of(index), track, DeviceSettings(**settings), Stats(), rng)


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def stored(actions: list) -> list[Any]:
    return [event for action in actions if isinstance(action, Store) for event in action.events]


def positions(actions: list) -> list[Position]:
    return [event for event in stored(actions) if isinstance(event, Position)]


def replies(actions: list) -> bytes:
    """What the server would write: the acks of the stored reports and the direct answers."""
    out = b""
    for action in actions:
        if isinstance(action, Store):
            out += action.ack
        elif isinstance(action, Send):
            out += action.data
        elif getattr(action, "accept", b""):
            out += action.accept
    return out
