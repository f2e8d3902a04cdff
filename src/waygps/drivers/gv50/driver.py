"""The ``gv50`` driver: Queclink GV50 and the @Track ASCII family over TCP and UDP.

Everything protocol-specific lives in the sans-IO codec (``codec.py``); this
module names it for the plugin system and carries out the codec's
``Notice`` actions (a log line and a counter), which the core adapter does
not know about.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import Counter
from twisted.logger import Logger

from waygps.actions import Action
from waygps.commands.model import Command
from waygps.config import ListenerConfig
from waygps.drivers.base import CodecDriver, escaped
from waygps.drivers.gv50.codec import Notice, datagram_codec, stream_codec

NAME = "gv50"
log = Logger(namespace="waygps.device")

NOTICES = Counter(
    "waygps_gv50_notices", "GV50 input kept but logged: ID failing its Luhn digit, unknown report type",
    ["driver", "reason"],
)

OPTIONS = {
    "max_frame_bytes": 4096,  # a frame (or garbage run) longer than this is dropped / closes the connection
    "password": "gv50",  # device password used in AT+GT commands (a command may carry its own)
    "heartbeat_minutes": 5,  # heartbeat interval written by set_server (AT+GTSRI), 0 or 5-360
}


class _Noticing:
    """A codec whose ``Notice`` actions become a log line and a counter."""

    def __init__(self, codec: Any) -> None:
        self.codec = codec

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        return _carry_out(self.codec.receive(data, now))

    def receive_datagram(self, data: bytes, now: datetime) -> list[Action]:
        return _carry_out(self.codec.receive_datagram(data, now))

    def encode_command(self, command: Command, now: datetime) -> bytes:
        return self.codec.encode_command(command, now)


def _carry_out(actions: list[Any]) -> list[Any]:
    kept = None
    for index, action in enumerate(actions):
        if type(action) is Notice:
            if kept is None:
                kept = actions[:index]
            NOTICES.labels(NAME, action.reason).inc()
            log.warn("{driver} {imei}: {reason} (kept): {excerpt}", driver=NAME, imei=action.imei,
                     reason=action.reason, excerpt=escaped(action.excerpt))
        elif kept is not None:
            kept.append(action)
    return actions if kept is None else kept


def _stream(listener: ListenerConfig) -> _Noticing:
    return _Noticing(stream_codec(listener))


def _datagram(listener: ListenerConfig) -> _Noticing:
    return _Noticing(datagram_codec(listener))


driver = CodecDriver(
    NAME,
    "Queclink GV50 / @Track ASCII (GV55, GV300, GL300, GV500...): TCP long connection and UDP",
    stream_codec=_stream,
    datagram_codec=_datagram,
    options=OPTIONS,
)
