"""Data quality: what is flagged invalid (and why), and how plausible fixes are graded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from persistence_support import T0, position
from waygps.quality import assess, grade

NOW = T0


@pytest.mark.parametrize(
    "values, reason",
    [
        (dict(lat=91.0), "coordinates_out_of_range"),
        (dict(lat=-90.5), "coordinates_out_of_range"),
        (dict(lon=180.01), "coordinates_out_of_range"),
        (dict(lon=float("nan")), "coordinates_out_of_range"),
        (dict(lat=float("inf")), "coordinates_out_of_range"),
        (dict(lat=0.0, lon=0.0), "zero_coordinates"),
        (dict(latitude=None), "no_coordinates"),
        (dict(minutes=10.5), "time_in_future"),
        (dict(minutes=-60 * 24 * 365 * 27), "time_before_2000"),
        (dict(speed=400.5), "impossible_speed"),
        (dict(speed=float("nan")), "impossible_speed"),
        (dict(speed=float("-inf")), "impossible_speed"),
        (dict(speed=401), "impossible_speed"),
        (dict(lat=float("-inf")), "coordinates_out_of_range"),
        (dict(lat=91), "coordinates_out_of_range"),
    ],
)
def test_impossible_reports_are_kept_but_flagged(values: dict, reason: str) -> None:
    report = position(**values)
    stored, flagged = assess(report, NOW)
    assert flagged == reason
    assert stored.valid is False and stored.attributes["qualityFlag"] == reason
    assert stored.document_id == report.document_id  # same identity: a re-send still deduplicates


@pytest.mark.parametrize("values", [dict(lat=90.0, lon=-180.0), dict(lat=0.0, lon=12.5), dict(minutes=9.9),
                                    dict(speed=400.0), dict(speed=None),
                                    dict(minutes=-60 * 24 * 365 * 26)])
def test_limits_themselves_are_plausible(values: dict) -> None:
    stored, flagged = assess(position(**values), NOW)
    assert flagged is None and stored.valid is True


def test_a_server_stamped_report_is_never_in_the_future() -> None:
    report = position(minutes=0, attributes={"time_source": "server"})
    stored, flagged = assess(report, NOW + timedelta(seconds=1))
    assert flagged is None and stored.valid


def test_a_report_the_device_marked_without_fix_stays_invalid_without_being_a_flag() -> None:
    stored, flagged = assess(position(valid=False), NOW)
    assert flagged is None and stored.valid is False and stored.attributes["qualityFlag"] == "no_fix"
    stored, flagged = assess(position(valid=False, lat=0.0, lon=0.0), NOW)
    assert flagged is None and stored.attributes["qualityFlag"] == "zero_coordinates"
    stored, flagged = assess(position(valid=False, latitude=None, longitude=None), NOW)
    assert flagged is None and stored.attributes["qualityFlag"] == "no_fix"


@pytest.mark.parametrize(
    "hdop, satellites, expected",
    [
        (0.8, 12, "excelente"), (1.0, 9, "excelente"), (1.5, 12, "buena"), (0.9, 7, "buena"),
        (4.9, None, "regular"), (None, 4, "regular"), (2.0, 3, "mala"), (7.5, 12, "mala"),
        (None, None, None), (0.0, None, None),
    ],
)
def test_plausible_fixes_are_graded_by_the_worse_of_hdop_and_satellites(hdop, satellites, expected) -> None:
    assert grade(hdop, satellites) == expected
    stored, _ = assess(position(hdop=hdop, satellites=satellites, attributes={"battery": 80}), NOW)
    assert stored.valid
    assert stored.attributes.get("quality") == expected
    assert "qualityFlag" not in stored.attributes  # a grade and a flag are never the same field
    assert stored.attributes["battery"] == 80


def test_restamped_carries_every_other_field_over() -> None:
    """``restamped`` lists Position's fields by hand (it runs for every report): a field added to
    Position and forgotten there fails here."""
    import attrs

    from waygps.events import Position
    from waygps.quality import restamped

    values = {}
    for index, field in enumerate(attrs.fields(Position)):
        if field.name in ("valid", "attributes"):
            continue
        values[field.name] = getattr(position(), field.name) if field.name.endswith("time") else f"value {index}"
    original = Position(valid=True, attributes={"a": 1}, **values)
    copy = restamped(original, False, {"b": 2})
    assert copy.valid is False and dict(copy.attributes) == {"b": 2}
    assert attrs.evolve(original, valid=False, attributes={"b": 2}) == copy


def test_restamped_keeps_a_subclass_and_its_own_fields() -> None:
    import attrs

    from waygps.events import Position
    from waygps.quality import restamped

    @attrs.frozen(kw_only=True)
    class Tagged(Position):
        tag: str = "x"

    base = position()
    original = Tagged(tag="kept", **{f.name: getattr(base, f.name) for f in attrs.fields(Position)})
    copy = restamped(original, False, {"b": 2})
    assert type(copy) is Tagged and copy.tag == "kept" and copy.valid is False
    assert copy == attrs.evolve(original, valid=False, attributes={"b": 2})


def test_grades_at_every_bound() -> None:
    def reference(hdop: float | None, satellites: int | None) -> str | None:
        grades = []
        if hdop is not None and hdop > 0:
            grades.append(0 if hdop <= 1.0 else 1 if hdop <= 2.0 else 2 if hdop <= 5.0 else 3)
        if satellites is not None:
            grades.append(0 if satellites >= 9 else 1 if satellites >= 6 else 2 if satellites >= 4 else 3)
        return ("excelente", "buena", "regular", "mala")[max(grades)] if grades else None

    for hdop in (None, 0.0, 0.5, 1.0, 1.01, 2.0, 2.01, 5.0, 5.01, 99.0):
        for satellites in (None, *range(0, 13)):
            assert grade(hdop, satellites) == reference(hdop, satellites), (hdop, satellites)
