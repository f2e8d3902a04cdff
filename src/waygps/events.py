"""What drivers and services tell each other: attrs frozen events.

Nothing here imports Twisted: codecs build these objects and stay free of I/O.
Times are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Mapping, Union

import attrs
from attrs import field, frozen


def _frozen_dict(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Hot path (one call per report): a dict the codec just built is taken as it is.
    if type(value) is dict:
        return value
    return dict(value or {})


class _computed_once:
    """A value computed on first use and kept in the instance's ``__dict__`` (then found there
    directly). ``functools.cached_property`` takes a lock on every first use in Python 3.11,
    and this runs once per stored report; an event is immutable, so a race computes the same value."""

    def __init__(self, compute: Any) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


# ``slots=False``: built by the codec for every report, a frozen class whose attributes live in a
# ``__dict__`` is made in about two thirds of the time of a slotted one (attrs sets slots through
# ``object.__setattr__``, one call per field), and the quality checks stamp a copy by copying that
# dict (``quality.restamped``). Reports are short-lived, so the larger instance costs nothing that
# lasts (docs/benchmarks.md).
@frozen(kw_only=True, slots=False)
class Position:
    """One position report: becomes one ``DadosVeiculo`` document.

    ``device_time`` is the fix time (``dataDevice``). A report without a fix
    time carries the server's receive time there and says so in
    ``attributes["time_source"] = "server"``; a report is never stamped 1970.

    ``key`` identifies the report on the device's side (sequence number, send
    time, record timestamp...). A re-sent report must produce the same key, so
    that it maps to the same ``_id`` and is stored once.
    """

    imei: str
    protocol: str
    device_time: datetime
    server_time: datetime
    event: str
    key: str
    valid: bool
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    speed: float | None = None
    course: float | None = None
    satellites: int | None = None
    hdop: float | None = None
    ignition: bool | None = None
    buffered: bool = False
    attributes: Mapping[str, Any] = field(factory=dict, converter=_frozen_dict)
    raw: str = ""

    @_computed_once
    def document_id(self) -> str:
        """Deterministic ``_id``: same device, protocol and key -> same document (computed once)."""
        digest = hashlib.blake2b(
            f"{self.protocol}\x1f{self.imei}\x1f{self.key}".encode("utf-8", "surrogateescape"),
            digest_size=12,
        )
        return digest.hexdigest()

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@frozen(kw_only=True)
class Heartbeat:
    """A keep-alive from an identified device: refreshes ``lastSeen``, stores nothing else."""

    imei: str
    protocol: str
    server_time: datetime


@frozen(kw_only=True)
class Alarm:
    """Something an operator should see at once (SOS, power cut, tow...).

    Drivers emit it beside the position that carried it; it is published to
    dashboards as ``system_alert``.
    """

    imei: str
    protocol: str
    server_time: datetime
    alarm: str
    message: str = ""
    position_id: str | None = None


@frozen(kw_only=True)
class CommandAck:
    """The device answered a command.

    ``command_id`` is set when the driver itself matched the answer to a
    command it sent (Teltonika answers carry no serial); otherwise the command
    service matches on ``serial`` and ``command_type``.
    """

    imei: str
    protocol: str
    server_time: datetime
    success: bool
    response: str
    serial: str | None = None
    command_type: str | None = None
    command_id: str | None = None


@frozen(kw_only=True)
class DeviceConnected:
    imei: str
    protocol: str
    server_time: datetime
    peer: str
    transport: str
    listener: str
    instance: str = ""


@frozen(kw_only=True)
class DeviceDisconnected:
    """A device's channel ended. ``error`` is set (to the reason) when it ended on a protocol error."""

    imei: str
    protocol: str
    server_time: datetime
    peer: str
    reason: str
    listener: str
    instance: str = ""
    error: str = ""


@frozen(kw_only=True)
class StoreStatus:
    """The store stopped taking reports (``available=False``) or takes them again (published by persistence)."""

    available: bool
    time: datetime
    detail: str = ""


@frozen(kw_only=True)
class CommandStatus:
    """A command changed status (published by the command service)."""

    command_id: str
    imei: str
    command_type: str
    status: str
    reason: str
    time: datetime


@frozen(kw_only=True)
class FeedReset:
    """The feed may have missed events (a change-stream resume token too old to use).

    Published on the feed's bus only; the WebSocket feed answers it by sending
    ``initial_state`` again to every client.
    """

    reason: str
    time: datetime


DeviceEvent = Union[Position, Heartbeat, Alarm, CommandAck]
SessionEvent = Union[DeviceConnected, DeviceDisconnected]
Event = Union[Position, Heartbeat, Alarm, CommandAck, DeviceConnected, DeviceDisconnected, CommandStatus, StoreStatus]


def to_plain(event: Event) -> dict[str, Any]:
    """A JSON-friendly dict of an event, with its class name under ``"type"``."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for name, value in attrs.asdict(event, recurse=False).items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, Mapping):
            value = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in value.items()}
        out[name] = value
    if isinstance(event, Position):
        out["id"] = event.document_id
    return out
