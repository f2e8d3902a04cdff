"""`waygps cleanup --older-than AGE` against the embedded store."""

from __future__ import annotations

import argparse
import io
from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
import pytest

from persistence_support import config
from waygps.cli import cleanup
from waygps.cli.main import build_parser

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["cleanup", *argv])


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("text, expected", [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)),
                                            ("2w", timedelta(weeks=2)), (" 30m ", timedelta(minutes=30))])
def test_ages(text: str, expected: timedelta) -> None:
    assert cleanup.parse_age(text) == expected


@pytest.mark.parametrize("text", ["90", "0d", "-1d", "1y", "d", "1.5d"])
def test_malformed_ages_are_refused_by_the_parser(text: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        args(f"--older-than={text}")
    assert exit_info.value.code == 2
    assert "expected a positive age" in capsys.readouterr().err


@pytest.mark.integration
def test_purges_only_reports_received_before_the_age(mongo_uri: str, mongo_db_name: str) -> None:
    client = pymongo.MongoClient(mongo_uri)
    positions = client[mongo_db_name]["DadosVeiculo"]
    positions.insert_many([{"_id": f"r{n}", "IMEI": "1", "dataServidor": NOW - timedelta(days=n)}
                           for n in range(0, 200)])
    client[mongo_db_name]["Veiculo"].insert_one({"IMEI": "1"})
    out, err = io.StringIO(), Tty()
    cfg = config(database=mongo_db_name, uri=mongo_uri)
    assert cleanup.run(args("--older-than", "90d", "--chunk", "25"), cfg, now=NOW, out=out, err=err) == 0
    left = sorted(int(d["_id"][1:]) for d in positions.find())
    assert left == list(range(0, 91))  # exactly 90 days old is not older than 90 days
    assert "109 reports" in out.getvalue() and "deleted 109 reports" in out.getvalue()
    assert err.getvalue().rstrip().endswith("[##############################] 100%  109/109")
    assert client[mongo_db_name]["Veiculo"].count_documents({}) == 1
    client.close()


@pytest.mark.integration
def test_dry_run_counts_without_deleting(mongo_uri: str, mongo_db_name: str) -> None:
    client = pymongo.MongoClient(mongo_uri)
    positions = client[mongo_db_name]["DadosVeiculo"]
    positions.insert_many([{"_id": n, "dataServidor": NOW - timedelta(days=100 + n)} for n in range(3)])
    out = io.StringIO()
    code = cleanup.run(args("--older-than", "90d", "--dry-run"), config(database=mongo_db_name, uri=mongo_uri),
                       now=NOW, out=out, err=io.StringIO())
    assert code == 0 and "3 reports" in out.getvalue() and "nothing deleted" in out.getvalue()
    assert positions.count_documents({}) == 3
    client.close()


def test_progress_in_a_log_is_one_line_per_tenth() -> None:
    log = io.StringIO()
    bar = cleanup.ProgressBar(1000, log)
    for done in range(0, 1001, 50):
        bar.update(done)
    assert log.getvalue().splitlines()[0] == "  0%  0/1,000"
    assert len(log.getvalue().splitlines()) == 11


def test_an_unreachable_store_is_one_line_and_status_1() -> None:
    err = io.StringIO()
    cfg = config(uri="mongodb://127.0.0.1:9/")
    code = cleanup.run(args("--older-than", "1d", "--timeout", "0.3"), cfg, now=NOW, out=io.StringIO(), err=err)
    assert code == 1
    assert err.getvalue().startswith("waygps cleanup: MongoDB at mongodb://127.0.0.1:9/: ServerSelectionTimeoutError")


@pytest.mark.integration
def test_reports_received_at_the_same_time_across_a_chunk_edge_all_go(mongo_uri: str, mongo_db_name: str) -> None:
    client = pymongo.MongoClient(mongo_uri)
    positions = client[mongo_db_name]["DadosVeiculo"]
    old = NOW - timedelta(days=100)
    positions.insert_many([{"_id": n, "dataServidor": old + timedelta(seconds=n // 7)} for n in range(50)]
                          + [{"_id": "recent", "dataServidor": NOW - timedelta(days=1)}])
    out, err = io.StringIO(), io.StringIO()
    code = cleanup.run(args("--older-than", "90d", "--chunk", "10"), config(database=mongo_db_name, uri=mongo_uri),
                       now=NOW, out=out, err=err)
    assert code == 0 and "deleted 50 reports" in out.getvalue()
    assert [d["_id"] for d in positions.find()] == ["recent"]
    assert err.getvalue().splitlines()[-1] == "100%  50/50"
    client.close()
