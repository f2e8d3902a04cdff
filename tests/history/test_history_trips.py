"""Trips and stops on generated tracks whose boundaries and distances are known."""

from __future__ import annotations

from datetime import timedelta

import pytest
from history_tracks import Leg, generate, two_trips

from waygps.history.geo import haversine_m
from waygps.history.trips import Stop, Trip, TripRules, detect

RULES = TripRules()


def _split(found):
    return [r for r in found if isinstance(r, Trip)], [r for r in found if isinstance(r, Stop)]


def _moving_runs(points, moving):
    runs, current = [], []
    for p in points:
        if moving(p):
            current.append(p)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _path(points):
    return sum(haversine_m(a.latitude, a.longitude, b.latitude, b.longitude) for a, b in zip(points, points[1:]))


def test_haversine_known_distances():
    # One degree of latitude on the mean sphere, and Santiago -> Valparaíso (about 98-99 km).
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195.08, rel=1e-6)
    assert haversine_m(-33.4489, -70.6693, -33.0472, -71.6127) == pytest.approx(98_200, rel=0.01)
    assert haversine_m(10, 20, 10, 20) == 0


@pytest.mark.parametrize("ignition", [False, True])
def test_two_trips_three_stops(ignition):
    points = two_trips(ignition=ignition)
    found = detect(points, RULES)
    trips, stops = _split(found)
    assert len(trips) == 2
    first_moving = next(p for p in points if p.speed > 0)
    first_drive = [p for p in points if first_moving.time <= p.time <= first_moving.time + timedelta(seconds=720)]
    # Trip 1 starts at the first moving report and ends at the first parked report after it,
    # across the 2-minute halt (speed 0, engine on).
    assert trips[0].start.time == first_moving.time
    end1 = next(p for p in points if p.time > first_drive[-1].time and p.speed == 0 and p.time > first_moving.time
                + timedelta(seconds=700))
    assert trips[0].end.time == end1.time
    assert trips[0].distance_m == pytest.approx(_path([p for p in points if first_moving.time <= p.time <= end1.time]))
    assert trips[0].distance_m == pytest.approx(5900, abs=1)  # 59 steps of 100 m (the first move precedes the start)
    assert trips[0].max_speed_kmh == 36.0
    assert trips[0].duration_s == (end1.time - first_moving.time).total_seconds()
    assert trips[0].average_speed_kmh == pytest.approx(trips[0].distance_m / trips[0].duration_s * 3.6)
    second = [p for p in points if p.speed == 72.0]
    assert trips[1].start.time == second[0].time
    assert trips[1].distance_m == pytest.approx(_path(second), rel=1e-9)
    assert trips[1].distance_m == pytest.approx(5800, abs=1)
    # Stops: before trip 1 (from the first report), between the trips, after trip 2 (to the last report).
    assert [(s.start, s.end) for s in stops] == [
        (points[0].time, trips[0].start.time),
        (trips[0].end.time, trips[1].start.time),
        (trips[1].end.time, points[-1].time),
    ]
    assert stops[1].latitude == trips[0].end.latitude and stops[1].longitude == trips[0].end.longitude
    assert stops[1].duration_s == pytest.approx(1200, abs=30)
    # In time order, alternating.
    assert [type(r).__name__ for r in found] == ["Stop", "Trip", "Stop", "Trip", "Stop"]


def test_halt_longer_than_min_stop_splits_a_speed_only_trip():
    points = generate([Leg(300, 10, 50.0), Leg(400, 20, 0.0), Leg(300, 10, 50.0)])
    trips, stops = _split(detect(points, RULES))
    assert len(trips) == 2 and len(stops) == 1
    assert stops[0].duration_s == pytest.approx(400, abs=20)


def test_ignition_off_ends_a_trip_even_for_a_short_halt():
    points = generate([Leg(300, 10, 50.0, ignition=True), Leg(60, 10, 0.0, ignition=False),
                       Leg(300, 10, 50.0, ignition=True)])
    trips, stops = _split(detect(points, RULES))
    assert len(trips) == 2
    assert stops == []  # 60 s off is shorter than min_stop_seconds
    assert trips[0].end.time == next(p for p in points if p.ignition is False).time


def test_a_gap_without_reports_ends_the_trip():
    before = generate([Leg(300, 10, 50.0)])
    after = generate([Leg(300, 10, 50.0)], t0=before[-1].time + timedelta(hours=1))
    trips, stops = _split(detect(before + after, RULES))
    assert [t.end.time for t in trips] == [before[-1].time, after[-1].time]
    assert trips[0].distance_m == pytest.approx(_path(before))
    assert len(stops) == 1 and stops[0].start == before[-1].time and stops[0].end == after[0].time


def test_jitter_is_not_a_trip_and_the_stop_goes_on():
    # Parked, then a 30-second "drive" of 100 m (GPS jitter with a speed spike), parked again.
    points = generate([Leg(600, 30, 0.0), Leg(30, 10, 12.0), Leg(600, 30, 0.0)])
    trips, stops = _split(detect(points, RULES))
    assert trips == []
    assert [(s.start, s.end) for s in stops] == [(points[0].time, points[-1].time)]


def test_invalid_and_unlocated_points_are_skipped():
    import attrs

    points = two_trips()
    noisy = []
    for i, p in enumerate(points):
        noisy.append(p)
        if i % 7 == 0:
            noisy.append(attrs.evolve(p, latitude=0.0, longitude=0.0, valid=False, speed=300.0))
            noisy.append(attrs.evolve(p, latitude=None, longitude=None, valid=True, speed=300.0))
    assert detect(noisy, RULES) == detect(points, RULES)


def test_odometer_distance_when_reported():
    trips, _ = _split(detect(two_trips(odometer=True), RULES))
    # The odometer counts every metre driven, including the first move before the start report.
    assert trips[0].odometer_distance_m == pytest.approx(5900, abs=1)
    assert trips[1].odometer_distance_m == pytest.approx(5800, abs=1)
    trips_plain, _ = _split(detect(two_trips(), RULES))
    assert trips_plain[0].odometer_distance_m is None


def test_streaming_gives_the_same_as_a_whole_list():
    from waygps.history.trips import TripDetector

    points = two_trips(ignition=True)
    detector = TripDetector(RULES)
    got = []
    for p in points:
        detector.add(p)
        got.extend(detector.take())
    detector.finish()
    got.extend(detector.take())
    assert got == detect(points, RULES)


def test_thresholds_are_configurable():
    points = generate([Leg(300, 10, 50.0), Leg(400, 20, 0.0), Leg(300, 10, 50.0)])
    trips, _ = _split(detect(points, TripRules(min_stop_seconds=600)))
    assert len(trips) == 1  # a 400 s halt is not a stop any more
    trips, _ = _split(detect(points, TripRules(moving_speed_kmh=60)))
    assert trips == []  # 50 km/h is not moving
