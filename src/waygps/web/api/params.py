"""Query parameters of the API, parsed strictly: a bad value is an :class:`ApiError` naming it."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from waygps.web.api.errors import bad_parameter

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no"})
DEFAULT_SPAN = timedelta(hours=24)


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


def parse_time(name: str, text: str, end_of_day: bool = False) -> datetime:
    """ISO 8601 (``2026-11-28T10:00:00Z``, offsets, naive = UTC) or a day (``2026-11-28``).

    A bare day as the end of a range means the end of that day.
    """
    if DAY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise bad_parameter(name, f"not a date: {text!r}") from None
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return start + timedelta(days=1) if end_of_day else start
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise bad_parameter(name, f"expected an ISO 8601 time such as 2026-11-28T10:00:00Z, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def time_range(args: Mapping[bytes, list[bytes]], now: datetime) -> tuple[datetime, datetime]:
    """``from`` / ``to`` (``to`` exclusive); default: the 24 hours up to now."""
    end_text = arg(args, "to")
    start_text = arg(args, "from")
    end = parse_time("to", end_text, end_of_day=True) if end_text else now
    start = parse_time("from", start_text) if start_text else end - DEFAULT_SPAN
    if start >= end:
        raise bad_parameter("from", f"must be before to ({start.isoformat()} >= {end.isoformat()})")
    return start, end


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
    return parse_time(name, text).strftime("%Y-%m-%d")


def any_text(args: Mapping[bytes, list[bytes]], name: str) -> Any:
    return arg(args, name)
