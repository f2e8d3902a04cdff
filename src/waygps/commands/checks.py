"""Checking a command with its device's driver when it is queued, not only when it is sent.

``waygps command send`` and the command service's intake (intents, hand-inserted
documents) ask the driver named by ``Veiculo.protocol``; a command the driver
would refuse is refused at once with the driver's reason. A device whose driver
is not known yet (never connected, or a driver not installed here) is checked
when its command is claimed, as before.
"""

from __future__ import annotations

from typing import Any, Mapping

from waygps.commands.model import Command, UnsupportedCommand
from waygps.commands.record import InvalidCommand, normalize


def refusal(driver: Any, imei: str, command_type: Any, params: Any) -> str | None:
    """The driver's reason to refuse the command, or ``None`` (accepted, or nothing to ask)."""
    check = getattr(driver, "check_command", None)
    if check is None:
        return None
    try:
        command = Command(id="check", imei=imei, type=str(command_type), params=normalize(command_type, params))
    except InvalidCommand as e:
        return f"invalid command: {e}"
    try:
        check(command)
    except UnsupportedCommand as e:
        return f"refused by the {getattr(driver, 'name', '?')} driver: {e}"
    except Exception:  # a driver bug: the claim tries again and records what happened
        return None
    return None


_DRIVERS: dict[str, Any] | None = None


def installed_drivers() -> Mapping[str, Any]:
    """Installed drivers by name (found once per process)."""
    global _DRIVERS
    if _DRIVERS is None:
        from waygps.drivers import find_drivers

        _DRIVERS = find_drivers()
    return _DRIVERS


def check_with_driver(protocol: Any, imei: str, command_type: Any, params: Any,
                      drivers: Mapping[str, Any] | None = None) -> str | None:
    """:func:`refusal` by the driver named ``protocol`` (``Veiculo.protocol``); ``None`` when unknown."""
    if not isinstance(protocol, str) or not protocol:
        return None
    driver = (installed_drivers() if drivers is None else drivers).get(protocol)
    if driver is None:
        return None
    return refusal(driver, imei, command_type, params)
