"""Time arguments of the API and the CLI: ISO 8601 or a bare day, UTC when no offset is given."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_SPAN = timedelta(hours=24)


def parse_time(text: str, end_of_day: bool = False) -> datetime:
    """``2026-11-28T10:00:00Z``, ``2026-11-28T07:00:00-03:00``, ``2026-11-28 10:00`` (UTC) or ``2026-11-28``.

    A bare day is its midnight, or with ``end_of_day`` the next midnight (the
    end of a range is exclusive, so ``to=2026-11-28`` includes that whole day).
    Raises ``ValueError`` with a message for an operator.
    """
    text = text.strip()
    if DAY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date: {text!r}") from None
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return start + timedelta(days=1) if end_of_day else start
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time such as 2026-11-28T10:00:00Z, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def time_range(start_text: str | None, end_text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) from optional texts; default the 24 hours up to ``now``.

    Raises ``ValueError("from: ...")`` / ``ValueError("to: ...")`` naming the argument.
    """
    try:
        end = parse_time(end_text, end_of_day=True) if end_text else now
    except ValueError as e:
        raise ValueError(f"to: {e}") from None
    try:
        start = parse_time(start_text) if start_text else end - DEFAULT_SPAN
    except ValueError as e:
        raise ValueError(f"from: {e}") from None
    if start >= end:
        raise ValueError(f"from: must be before to ({start.isoformat()} >= {end.isoformat()})")
    return start, end
