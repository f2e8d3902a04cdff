"""Query parameters of the API, parsed strictly: a bad value is an :class:`ApiError` naming it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from waygps.history import times
from waygps.web.api.errors import bad_parameter

TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no"})


def arg(args: Mapping[bytes, list[bytes]], name: str) -> str | None:
    """The last value of ``name`` (``None`` when absent or empty)."""
    values = args.get(name.encode())
    if not values:
        return None
    try:
        text = values[-1].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise bad_parameter(name, "not UTF-8") from None
    return text or None


def time_range(args: Mapping[bytes, list[bytes]], now: datetime) -> tuple[datetime, datetime]:
    """``from`` / ``to`` (``to`` exclusive); default: the 24 hours up to now."""
    try:
        return times.time_range(arg(args, "from"), arg(args, "to"), now)
    except ValueError as e:
        name, _, message = str(e).partition(": ")
        raise bad_parameter(name, message) from None


def choice(args: Mapping[bytes, list[bytes]], name: str, options: tuple[str, ...], default: str) -> str:
    text = arg(args, name)
    if text is None:
        return default
    if text.lower() not in options:
        raise bad_parameter(name, f"expected one of {', '.join(options)}, got {text!r}")
    return text.lower()


def boolean(args: Mapping[bytes, list[bytes]], name: str) -> bool | None:
    text = arg(args, name)
    if text is None:
        return None
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise bad_parameter(name, f"expected true or false, got {text!r}")


def count(args: Mapping[bytes, list[bytes]], name: str, default: int = 0, maximum: int | None = None) -> int:
    text = arg(args, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_parameter(name, f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise bad_parameter(name, f"must not be negative, got {value}")
    if maximum is not None and value > maximum:
        raise bad_parameter(name, f"at most {maximum}, got {value}")
    return value


def day(args: Mapping[bytes, list[bytes]], name: str) -> str | None:
    text = arg(args, name)
    if text is None:
        return None
    try:
        return times.parse_time(text).strftime("%Y-%m-%d")
    except ValueError as e:
        raise bad_parameter(name, str(e)) from None


def any_text(args: Mapping[bytes, list[bytes]], name: str) -> Any:
    return arg(args, name)
