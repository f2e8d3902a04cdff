"""`waygps history` and `waygps trips` against the embedded store: files read back by their parsers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import gpxpy
import pytest
from history_tracks import documents, two_trips

from waygps.cli.main import main
from waygps.history.trips import iso

pytestmark = pytest.mark.integration

IMEI = "862894020180553"


@pytest.fixture
def config_file(tmp_path: Path, mongo_uri: str, mongo_db_name: str) -> Any:
    import pymongo

    points = two_trips(ignition=True, odometer=True)
    client = pymongo.MongoClient(mongo_uri)
    client[mongo_db_name]["DadosVeiculo"].insert_many(list(documents(IMEI, points)))
    client.close()
    path = tmp_path / "waygps.toml"
    path.write_text(f'[mongodb]\nuri = "{mongo_uri}"\ndatabase = "{mongo_db_name}"\n'
                    '[history]\nbatch_size = 50\n')
    return path, points


def test_history_gpx_file_and_progress(config_file: Any, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path, points = config_file
    monkeypatch.setattr("waygps.cli.history.PROGRESS_FROM", 10)
    out = tmp_path / "day.gpx"
    code = main(["history", "-c", str(path), IMEI, "--from", "2026-11-28", "--to", "2026-11-28", "--format", "gpx",
                 "-o", str(out)])
    assert code == 0
    got = gpxpy.parse(out.read_text()).tracks[0].segments[0].points
    assert [(g.time, g.latitude, g.longitude) for g in got] == [(p.time, p.latitude, p.longitude) for p in points]
    err = capsys.readouterr().err
    assert "100%" in err and f"{len(points):,}/{len(points):,}" in err  # the progress bar reached the end
    assert f"{len(points):,} points of {IMEI}" in err


def test_history_csv_and_geojson_to_stdout(config_file: Any, capsysbinary: Any) -> None:
    path, points = config_file
    assert main(["history", "-c", str(path), IMEI, "--from", "2026-11-28T00:00:00Z", "--to", "2026-11-29",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsysbinary.readouterr().out.decode())))
    assert [r["time"] for r in rows] == [iso(p.time) for p in points]
    assert main(["history", "-c", str(path), IMEI, "--from", "2026-11-28", "--format", "geojson", "--to",
                 "2026-11-28"]) == 0
    geo = json.loads(capsysbinary.readouterr().out)
    assert len(geo["features"]) == len(points)


def test_history_bad_arguments(config_file: Any, capsys: Any) -> None:
    path, _ = config_file
    assert main(["history", "-c", str(path), IMEI, "--from", "soon"]) == 2
    assert capsys.readouterr().err.startswith("waygps history: --from: ")
    assert main(["history", "-c", str(path), IMEI, "--from", "2026-11-29", "--to", "2026-11-28"]) == 2
    assert "--from: must be before to" in capsys.readouterr().err


def test_trips_table_and_json(config_file: Any, capsys: Any) -> None:
    path, _ = config_file
    assert main(["trips", "-c", str(path), IMEI, "--from", "2026-11-28", "--to", "2026-11-28", "--stops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{IMEI}: 2 trips, 11.70 km")
    kinds = [line.split()[0] for line in lines[2:]]
    assert kinds == ["stop", "trip", "stop", "trip", "stop"]
    assert main(["trips", "-c", str(path), IMEI, "--from", "2026-11-28", "--to", "2026-11-28", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [round(t["distance_m"]) for t in body["trips"]] == [5900, 5800]
    assert [round(t["odometer_distance_m"]) for t in body["trips"]] == [5900, 5800]
