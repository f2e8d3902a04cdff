"""Unit conversions most GPS protocols need: NMEA-style ``ddmm.mmmm`` with a hemisphere, knots.

Every function raises ``ValueError`` (with a short reason) on input that is not
a coordinate, so a codec turns it into ``Rejected`` instead of storing it.
"""

from __future__ import annotations

import math

KNOT_KMH = 1.852  # one knot in km/h, exactly (an international nautical mile is 1852 m)
MPH_KMH = 1.609344
_SIGNS = {"N": 1.0, "E": 1.0, "S": -1.0, "W": -1.0}
_LIMITS = {"N": 90.0, "S": 90.0, "E": 180.0, "W": 180.0}


def knots_to_kmh(knots: float) -> float:
    return knots * KNOT_KMH


def mph_to_kmh(mph: float) -> float:
    return mph * MPH_KMH


def hemisphere_sign(hemisphere: str) -> float:
    """``N``/``E`` -> 1.0, ``S``/``W`` -> -1.0 (either case)."""
    try:
        return _SIGNS[hemisphere.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"bad hemisphere {hemisphere!r}") from None


def ddmm_to_degrees(value: str | float, hemisphere: str) -> float:
    """``"2330.1234"`` (latitude ddmm.mmmm) or ``"04638.5000"`` (longitude dddmm.mmmm) with its hemisphere
    -> signed decimal degrees. Minutes must be below 60 and the result within the hemisphere's range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a ddmm.mmmm number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"not a ddmm.mmmm number: {value!r}")
    sign = hemisphere_sign(hemisphere)
    degrees = int(number // 100)
    minutes = number - degrees * 100
    if minutes >= 60:
        raise ValueError(f"minutes {minutes:.4f} out of range in {value!r}")
    result = degrees + minutes / 60
    if result > _LIMITS[hemisphere.upper()]:
        raise ValueError(f"{result:.6f} degrees out of range for {hemisphere.upper()}")
    return sign * result


def degrees_to_ddmm(degrees: float, latitude: bool) -> tuple[str, str]:
    """The inverse, for encoders and test data: ``(-23.5, True)`` -> ``("2330.0000", "S")``."""
    hemisphere = ("N" if degrees >= 0 else "S") if latitude else ("E" if degrees >= 0 else "W")
    value = abs(degrees)
    whole = int(value)
    minutes = (value - whole) * 60
    if round(minutes, 4) >= 60:
        whole, minutes = whole + 1, 0.0
    width = 2 if latitude else 3
    return f"{whole:0{width}d}{minutes:07.4f}", hemisphere


__all__ = ["KNOT_KMH", "MPH_KMH", "ddmm_to_degrees", "degrees_to_ddmm", "hemisphere_sign", "knots_to_kmh",
           "mph_to_kmh"]
