"""The track model: smooth, plausible drives with ignition cycles, repeatable, optionally on GPX roads."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from waygps.simulate.track import MAX_ACCELERATION_KMH_S, Route, Track, distance, load_gpx

T0 = 1_790_000_000.0


def drive(seconds: int, seed: int = 7, route: Route | None = None, step: float = 1.0) -> list:
    track = Track(random.Random(seed), T0, -17.78, -63.18, route=route)
    return [track.advance(T0 + n * step) for n in range(1, int(seconds / step) + 1)]


def test_speed_and_heading_change_smoothly_and_positions_follow_the_speed() -> None:
    fixes = drive(3600)
    for a, b in zip(fixes, fixes[1:]):
        assert abs(b.speed - a.speed) <= MAX_ACCELERATION_KMH_S + 0.2
        turn = abs((b.heading - a.heading + 180) % 360 - 180)
        assert turn <= 16  # degrees per second, plus rounding
        # No jumps: the distance covered in a second is what the speeds allow (plus rounding).
        assert distance(a.latitude, a.longitude, b.latitude, b.longitude) <= max(a.speed, b.speed) / 3.6 + 0.5
    assert max(f.speed for f in fixes) > 20 and min(f.speed for f in fixes) == 0.0
    assert fixes[-1].odometer_km > fixes[0].odometer_km


def test_ignition_cycles_with_events_and_no_movement_while_off() -> None:
    fixes = drive(4 * 3600)
    events = [f.event for f in fixes if f.event]
    assert "ignition_on" in events and "ignition_off" in events
    # Events alternate and match the state they announce.
    assert all(a != b for a, b in zip(events, events[1:]))
    for fix in fixes:
        if fix.event:
            assert fix.ignition == (fix.event == "ignition_on")
        if not fix.ignition:
            assert fix.speed < 1.0
    # Stops with the ignition on (junctions) happen too.
    assert any(f.ignition and f.speed == 0.0 for f in fixes)


def test_same_seed_same_drive_and_coarse_steps_give_the_same_place() -> None:
    assert drive(600, seed=3) == drive(600, seed=3)
    assert drive(600, seed=3) != drive(600, seed=4)
    fine = drive(600, seed=5)[-1]
    coarse = drive(600, seed=5, step=10.0)[-1]
    assert (coarse.latitude, coarse.longitude, coarse.time) == (fine.latitude, fine.longitude, fine.time)


GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <trk><name>ring road</name><trkseg>
    <trkpt lat="-17.7800" lon="-63.1800"><ele>410</ele></trkpt>
    <trkpt lat="-17.7800" lon="-63.1700"><ele>412</ele></trkpt>
    <trkpt lat="-17.7700" lon="-63.1700"><ele>415</ele></trkpt>
  </trkseg></trk>
</gpx>
"""


def test_a_gpx_route_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "road.gpx"
    path.write_text(GPX)
    route = load_gpx(str(path))
    assert len(route.points) == 3 and 2000 < route.length < 2300
    for fix in drive(1800, route=route):
        # Always on one of the two legs: on the first leg's latitude or the second leg's longitude.
        assert abs(fix.latitude + 17.78) < 1e-5 or abs(fix.longitude + 63.17) < 1e-5
        assert -17.7801 <= fix.latitude <= -17.7699 and -63.1801 <= fix.longitude <= -63.1699


def test_a_file_that_is_not_gpx_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.gpx"
    path.write_text("not xml at all")
    with pytest.raises(ValueError, match="not a GPX file"):
        load_gpx(str(path))
    with pytest.raises(ValueError):
        Route([(-17.0, -63.0, 0.0)])
