"""What every simulated device does, whatever its protocol: keep what is not acknowledged.

A device model is sans-IO: the runner gives it the time (``now``, seconds since
the epoch) and the bytes the server sent, and writes the bytes it returns. On
TCP a returned item is a chunk of the stream; on UDP each item is one datagram.

A report stays in :attr:`DeviceModel.pending` from its first send until the
server acknowledges it. One that is not acknowledged within ``ack_timeout``
is sent again (in the protocol's re-send form), and every pending report is
sent again after a reconnect, as real trackers do from their buffer.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

from attrs import frozen

from waygps.simulate.stats import Stats
from waygps.simulate.track import Track


@frozen
class DeviceSettings:
    ack_timeout: float = 20.0
    #: Seconds between heartbeats on an idle link (0 = none).
    heartbeat: float = 60.0
    udp: bool = False
    #: GV50 command password the device accepts.
    password: str = "gv50"
    #: Most reports a device keeps unacknowledged (its buffer); the oldest is dropped beyond it.
    buffer_limit: int = 10000


class Pending:
    """One report sent and not yet acknowledged."""

    __slots__ = ("key", "frame", "first_sent", "last_sent", "sends", "records")

    def __init__(self, key: Any, frame: bytes, now: float, records: int = 1) -> None:
        self.key = key
        self.frame = frame
        self.first_sent = now
        self.last_sent = now
        self.sends = 1
        self.records = records


def luhn_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def imei_of(index: int, prefix: str = "35") -> str:
    """A valid (Luhn-checked) 15-digit IMEI, one per device number."""
    body = f"{prefix}{index:0{14 - len(prefix)}d}"
    if len(body) != 14:
        raise ValueError(f"device number {index} does not fit an IMEI with prefix {prefix}")
    return body + luhn_digit(body)


class DeviceModel:
    """Base of the protocol models; subclasses build frames and read the server's answers."""

    protocol = ""

    def __init__(self, imei: str, track: Track, settings: DeviceSettings, stats: Stats,
                 rng: random.Random | None = None) -> None:
        self.imei = imei
        self.track = track
        self.settings = settings
        self.stats = stats
        self.rng = rng or random.Random(imei)
        self.pending: OrderedDict[Any, Pending] = OrderedDict()
        self.online = False
        self.last_sent = 0.0
        self.output = False  # digital output 1 (the immobiliser relay)
        self.reports_made = 0
        self.commands: list[str] = []  # the commands received (text), newest last, bounded
        #: Called with ``(model, now)`` after an acknowledgement, for closed-loop senders.
        self.on_ack: Any = None

    # --- the runner's calls -------------------------------------------------------------------
    def connected(self, now: float) -> list[bytes]:
        """The link is up: what to send first (a handshake, or the buffered reports again)."""
        self.online = True
        self.last_sent = now
        return self.resend_all(now)

    def disconnected(self, now: float) -> None:
        self.online = False

    def report(self, now: float) -> list[bytes]:
        """A new report of the vehicle at ``now``."""
        raise NotImplementedError

    def heartbeat(self, now: float) -> list[bytes]:
        """A keep-alive when the link was idle for the heartbeat interval."""
        return []

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Bytes (TCP) or one datagram (UDP) from the server; returns what to answer."""
        raise NotImplementedError

    def expired(self, now: float) -> list[bytes]:
        """Reports not acknowledged within ``ack_timeout``, in their re-send form."""
        if not self.online:
            return []
        limit = now - self.settings.ack_timeout
        return [self._again(p, now) for p in list(self.pending.values()) if p.last_sent <= limit]

    def resend_all(self, now: float) -> list[bytes]:
        return [self._again(p, now) for p in list(self.pending.values())]

    @property
    def idle(self) -> bool:
        return not self.pending

    # --- helpers for subclasses ------------------------------------------------------------------
    def _keep(self, key: Any, frame: bytes, now: float, records: int = 1) -> bytes:
        while len(self.pending) >= self.settings.buffer_limit:
            self.pending.popitem(last=False)
        self.pending[key] = Pending(key, frame, now, records)
        self.stats.sent += records
        self.reports_made += 1
        self.last_sent = now
        return frame

    def _again(self, pending: Pending, now: float) -> bytes:
        pending.sends += 1
        pending.last_sent = now
        self.last_sent = now
        self.stats.resent += pending.records
        return self.resend_form(pending)

    def resend_form(self, pending: Pending) -> bytes:
        return pending.frame

    def _acknowledged(self, key: Any, now: float) -> bool:
        pending = self.pending.pop(key, None)
        if pending is None:
            return False
        for _ in range(pending.records):
            self.stats.ack(now - pending.last_sent)
        if self.on_ack is not None:
            self.on_ack(self, now)
        return True

    def _command(self, text: str) -> None:
        self.stats.commands += 1
        self.commands.append(text)
        del self.commands[:-20]
