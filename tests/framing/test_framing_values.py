"""Device time plausibility, coordinates and speed units."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from waygps.framing import (
    ddmm_to_degrees, degrees_to_ddmm, from_epoch, hemisphere_sign, knots_to_kmh, plausible_time,
)

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("device, reason", [
    (None, "missing"),
    (datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc), "default_date"),
    (datetime(2000, 1, 1, 0, 1, tzinfo=timezone.utc), "default_date"),
    (datetime(1999, 12, 31, tzinfo=timezone.utc), "before_2001"),
    (NOW + timedelta(days=3), "future"),
    (datetime(2026, 5, 4, 11, 0), "no_timezone"),
])
def test_implausible_times_fall_back_to_the_server_time(device: datetime | None, reason: str) -> None:
    checked = plausible_time(device, NOW)
    assert (checked.time, checked.source, checked.reason) == (NOW, "server", reason)
    assert checked.attributes() == {"time_source": "server", "time_rejected": reason}


def test_a_plausible_time_is_kept_in_utc() -> None:
    local = datetime(2026, 5, 4, 8, 30, tzinfo=timezone(timedelta(hours=-3)))
    checked = plausible_time(local, NOW)
    assert checked.from_device and checked.time == datetime(2026, 5, 4, 11, 30, tzinfo=timezone.utc)
    assert checked.time.tzinfo is timezone.utc and checked.attributes() == {}
    assert plausible_time(NOW + timedelta(hours=20), NOW).from_device  # a clock a little ahead


def test_from_epoch() -> None:
    assert from_epoch(0) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert from_epoch(1e20) is None


def test_ddmm_conversions() -> None:
    assert ddmm_to_degrees("2330.0000", "S") == -23.5
    assert ddmm_to_degrees("04636.0000", "w") == pytest.approx(-46.6)
    assert ddmm_to_degrees(4807.038, "N") == pytest.approx(48.1173)
    assert degrees_to_ddmm(-23.5, True) == ("2330.0000", "S")
    assert degrees_to_ddmm(-46.6, False) == ("04636.0000", "W")
    assert hemisphere_sign("E") == 1.0


@pytest.mark.parametrize("value, hemisphere", [
    ("2360.0000", "N"), ("9100.0000", "S"), ("18100.0", "E"), ("abc", "N"), ("-100.0", "N"), ("nan", "N"),
    ("2330.0", "X"), ("2330.0", ""),
])
def test_bad_coordinates_raise_value_error(value: str, hemisphere: str) -> None:
    with pytest.raises(ValueError):
        ddmm_to_degrees(value, hemisphere)


def test_knots() -> None:
    assert knots_to_kmh(10) == pytest.approx(18.52)
