"""Is the time a device reported believable? If not, the server's receive time stands in.

Trackers without a fix (or with a fresh RTC) report the epoch (1970-01-01),
the GPS/RTC default day 2000-01-01, or a date years ahead after a week-number
rollover. None of these may reach storage as a fix time: the report keeps the
server time and says why (``attributes["time_source"] = "server"``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from attrs import frozen

EARLIEST = datetime(2001, 1, 1, tzinfo=timezone.utc)  # before this, a clock that was never set
DEFAULT_DAYS = frozenset((date(1970, 1, 1), date(2000, 1, 1), date(1980, 1, 6)))  # epochs devices fall back to
FUTURE_SLACK = timedelta(days=1)  # device clocks run ahead; a day more is not a time zone mix-up


@frozen
class DeviceTime:
    """The time to store and where it came from; ``reason`` says why the device's was refused."""

    time: datetime
    source: str  # "device" | "server"
    reason: str | None = None

    @property
    def from_device(self) -> bool:
        return self.source == "device"

    def attributes(self) -> dict[str, str]:
        """What a ``Position`` carries in ``attributes`` about its time (nothing for a device time)."""
        if self.reason is None:
            return {}
        return {"time_source": "server", "time_rejected": self.reason}


def time_problem(device: datetime | None, now: datetime, *, future: timedelta = FUTURE_SLACK,
                 earliest: datetime = EARLIEST) -> str | None:
    """Why ``device`` is not a believable fix time at server time ``now``, or ``None`` if it is."""
    if device is None:
        return "missing"
    if device.tzinfo is None or device.utcoffset() is None:
        return "no_timezone"
    day = device.astimezone(timezone.utc).date()
    if day in DEFAULT_DAYS:
        return "default_date"
    if device < earliest:
        return "before_2001"
    if device > now + future:
        return "future"
    return None


def plausible_time(device: datetime | None, now: datetime, *, future: timedelta = FUTURE_SLACK,
                   earliest: datetime = EARLIEST) -> DeviceTime:
    """``device`` if it is believable, else ``now`` with the reason (``now`` must be UTC-aware)."""
    problem = time_problem(device, now, future=future, earliest=earliest)
    if problem is None:
        assert device is not None
        return DeviceTime(device.astimezone(timezone.utc), "device")
    return DeviceTime(now, "server", problem)


def from_epoch(seconds: float) -> datetime | None:
    """A UTC datetime from Unix seconds, ``None`` where the value cannot be a date at all."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


__all__ = ["DEFAULT_DAYS", "DeviceTime", "EARLIEST", "FUTURE_SLACK", "from_epoch", "plausible_time", "time_problem"]
