"""A simulated device speaking the generic driver's JSON lines (TCP line or UDP datagram).

One report is one line ``{"id": ..., "lat": ..., "lon": ..., ...}``; the server
answers ``OK <n>`` once it is stored, ``ERR <reason>`` otherwise. The answer
carries no sequence number, so the device has one line in flight and keeps the
others until it is answered (or re-sends it after the timeout). A line the
server sends that is not an answer is a command; generic devices have no
protocol to confirm one, so it is only recorded.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from waygps.simulate.device import DeviceModel, Pending


class GenericDevice(DeviceModel):
    protocol = "generic"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = b""
        self.waiting: list[bytes] = []
        self.in_flight: Pending | None = None
        self.sequence = 0
        self.last_ms = 0

    def report(self, now: float) -> list[bytes]:
        fix = self.track.advance(now)
        stamp = max(int(fix.time * 1000), self.last_ms + 1)
        self.last_ms = stamp
        body = {"id": self.imei, "time": datetime.fromtimestamp(stamp / 1000, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "lat": fix.latitude, "lon": fix.longitude, "speed": fix.speed, "course": fix.heading,
                "alt": fix.altitude, "ignition": fix.ignition, "satellites": 9, "hdop": 0.9,
                "odometer_km": fix.odometer_km, "output1": self.output}
        if fix.event is not None:
            body["event"] = fix.event
        self.waiting.append(json.dumps(body, separators=(",", ":")).encode() + b"\n")
        return self._send_next(now)

    def _send_next(self, now: float) -> list[bytes]:
        if self.in_flight is not None or not self.waiting or not self.online:
            return []
        line = self.waiting.pop(0)
        self.sequence += 1
        self.in_flight = Pending(self.sequence, line, now)
        self.pending[self.sequence] = self.in_flight
        self.stats.sent += 1
        self.reports_made += 1
        self.last_sent = now
        return [line]

    def connected(self, now: float) -> list[bytes]:
        self.online = True
        self.last_sent = now
        self.buffer = b""
        return self.resend_all(now) or self._send_next(now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        self.buffer += data
        if len(self.buffer) > 65536:
            self.stats.unexpected += 1
            self.buffer = b""
        out: list[bytes] = []
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            line = line.strip()
            if not line:
                continue
            if line.startswith(b"OK ") or line == b"OK":
                pending, self.in_flight = self.in_flight, None
                if pending is None or not self._acknowledged(pending.key, now):
                    self.stats.unexpected += 1  # a late answer to a line already answered
                out.extend(self._send_next(now))
            elif line.startswith(b"ERR "):
                self.stats.rejected += 1  # kept: sent again after the timeout
            else:
                self._command(line.decode("utf-8", "replace"))
        return out
