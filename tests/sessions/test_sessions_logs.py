"""--log-format json: one JSON object per line, device fields as keys; level filtering; twistd wiring."""

from __future__ import annotations

import io
import json

from twisted.application.service import Application, Service
from twisted.logger import ILogObserver, LogLevel, Logger

from waygps.logs import JsonLineObserver, observed, observer


def emit(obs, level=LogLevel.info, fmt="{driver} {imei} {peer}: identified", **fields):
    Logger(namespace="waygps.device", observer=obs).emit(level, fmt, **fields)


def test_each_event_is_one_json_line_with_its_fields() -> None:
    stream = io.StringIO()
    obs = JsonLineObserver(stream)
    emit(obs, driver="gv50", imei="862894020180553", peer="10.0.0.5:40312", listener="gv50-tcp-8081")
    emit(obs, LogLevel.warn, "{driver} {peer}: rejected ({reason}): {excerpt}", driver="teltonika",
         peer="10.0.0.6:1", reason="bad_crc", excerpt=b"\x00\x01")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "gv50 862894020180553 10.0.0.5:40312: identified"
    assert (first["level"], first["namespace"]) == ("info", "waygps.device")
    assert (first["driver"], first["imei"], first["peer"], first["listener"]) == (
        "gv50", "862894020180553", "10.0.0.5:40312", "gv50-tcp-8081")
    assert first["time"].endswith("Z")
    assert not any(key.startswith("log_") for key in first)
    assert second["level"] == "warn" and second["excerpt"] == "\\x00\\x01"


def test_a_failure_carries_its_traceback() -> None:
    stream = io.StringIO()
    log = Logger(namespace="waygps.test", observer=JsonLineObserver(stream))
    try:
        raise ValueError("broken frame")
    except ValueError:
        log.failure("{driver} {peer}: codec raised", driver="gv50", peer="p")
    record = json.loads(stream.getvalue())
    assert record["level"] == "critical"
    assert "ValueError: broken frame" in record["failure"]


def test_fields_named_like_the_record_keys_are_kept_apart() -> None:
    stream = io.StringIO()
    JsonLineObserver(stream)({"log_format": "{namespace} level {level}", "log_level": LogLevel.info,
                              "log_namespace": "waygps.device", "log_time": 0.0,
                              "namespace": "fleet", "level": 3})
    record = json.loads(stream.getvalue())
    assert record["namespace_"] == "fleet" and record["level_"] == 3
    assert (record["namespace"], record["level"]) == ("waygps.device", "info")


def test_unserialisable_values_become_text() -> None:
    stream = io.StringIO()
    emit(JsonLineObserver(stream), fmt="{thing}", thing=object())
    assert json.loads(stream.getvalue())["thing"].startswith("<object object")


def test_level_filter() -> None:
    stream = io.StringIO()
    obs = observer("json", "warn", stream)
    emit(obs, LogLevel.info, "quiet")
    emit(obs, LogLevel.warn, "loud")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_text_format() -> None:
    stream = io.StringIO()
    emit(observer("text", "info", stream), driver="gv50", imei="1", peer="p")
    assert stream.getvalue().rstrip().endswith("[waygps.device#info] gv50 1 p: identified")


def test_observed_service_gives_twistd_its_observer() -> None:
    inner = Service()
    obs = observer("json", "info", io.StringIO())
    application = Application("waygps")
    observed(inner, obs).setServiceParent(application)
    assert application.getComponent(ILogObserver) is obs
    assert inner.parent is not None and inner.parent.parent is not None
