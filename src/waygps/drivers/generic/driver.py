"""The generic driver: text reports from simple trackers, phone apps and scripts.

Lines over TCP or UDP and OsmAnd-style HTTP on the TCP port; see
``docs/drivers/generic.md``. The codecs (``codec.py``) hold the protocol; this
module only names them for the plugin system.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waygps.actions import Close, Rejected, Store
from waygps.config import ListenerConfig
from waygps.drivers.base import CodecDriver
from waygps.drivers.generic.codec import DEFAULT_OPTIONS, GenericDatagramCodec, GenericStreamCodec, Settings


def settings(listener: ListenerConfig) -> Settings:
    try:
        return Settings.from_listener(listener.options, ack=listener.ack)
    except ValueError as error:
        raise ValueError(f"listener {listener.name or listener.port}: {error}") from None


class GenericDriver(CodecDriver):
    """A :class:`CodecDriver` whose ``decode`` reads a capture of many devices and requests.

    A live TCP connection carries one device and one HTTP request; a capture
    file (``waygps decode``) is a mix of lines and requests from many senders.
    """

    def decode(self, data: bytes, now: datetime, transport: str = "tcp") -> list[Any]:
        if transport != "tcp":
            return super().decode(data, now, transport)
        codec = GenericStreamCodec(settings(self.default_listener(transport)), capture=True)
        out: list[Any] = []
        for action in codec.receive(data, now) + codec.flush(now):
            if isinstance(action, Store):
                out.extend(action.events)
            elif isinstance(action, (Rejected, Close)):
                out.append(action)
        return out


driver = GenericDriver(
    "generic",
    "Text reports: JSON, key=value and NMEA RMC lines (TCP, UDP) and OsmAnd-style HTTP GET/POST",
    stream_codec=lambda listener: GenericStreamCodec(settings(listener)),
    datagram_codec=lambda listener: GenericDatagramCodec(settings(listener)),
    options=DEFAULT_OPTIONS,
)
