"""A command as drivers see it (no Twisted, no MongoDB)."""

from __future__ import annotations

from typing import Any, Mapping

from attrs import field, frozen

COMMAND_TYPES = frozenset(
    {"block", "unblock", "set_server", "set_apn", "reboot", "request_position", "custom"}
)


class UnsupportedCommand(ValueError):
    """The driver cannot express this command for its devices."""


@frozen(kw_only=True)
class Command:
    """One command to write to a device.

    ``serial`` is the number the device will echo in its acknowledgement (GV50
    uses four hex digits); drivers whose protocol carries none ignore it.
    """

    id: str
    imei: str
    type: str
    params: Mapping[str, Any] = field(factory=dict, converter=dict)
    serial: str = "0000"
