"""Secrets out of log lines: the patterns, the configured values, the in-place observer."""

from __future__ import annotations

import io
import json

from twisted.logger import LogPublisher, Logger
from twisted.python.failure import Failure

from waygps.config import build
from waygps.logs import observer
from waygps.redaction import MASK, Redactor, config_secrets, install


def test_patterns() -> None:
    r = Redactor()
    assert r.text('"GET /ws/gps/?token=abc123&x=1 HTTP/1.1"') == f'"GET /ws/gps/?token={MASK}&x=1 HTTP/1.1"'
    assert r.text("/metrics?access_token=q-w_e.r") == f"/metrics?access_token={MASK}"
    assert r.text("/a?TOKEN%3Dzz") == f"/a?TOKEN%3D{MASK}"
    assert r.text("Authorization: Bearer abc.def") == f"Authorization: Bearer {MASK}"
    assert r.text("{'authorization': 'Basic dXNlcjpwYXNz'}") == f"{{'authorization': 'Basic {MASK}'}}"
    assert r.text("sent bearer xyz123==") == f"sent bearer {MASK}"
    assert r.text("mongodb://app:s3cret@db.example:27017/gps") == f"mongodb://app:{MASK}@db.example:27017/gps"
    assert r.text("gv50 862894020180553 10.0.0.5:40312: identified") == "gv50 862894020180553 10.0.0.5:40312: identified"


def test_configured_values_raw_and_url_encoded() -> None:
    r = Redactor(["s3cr3t value", "abc"])  # too short to be searched for
    assert r.text("path /x/s3cr3t value/y and s3cr3t%20value") == f"path /x/{MASK}/y and {MASK}"
    assert r.text("abc") == "abc"
    assert r.value(b"raw s3cr3t value") == f"raw {MASK}".encode()


def test_config_secrets_are_the_plaintext_tokens() -> None:
    config = build({"websocket": {"tokens": [{"token": "plain-one"}, {"token_sha256": "a" * 64}]},
                    "web": {"metrics_token": "metrics-one"}})
    assert config_secrets(config) == ["plain-one", "metrics-one"]
    assert "plain-one" not in repr(config) and "metrics-one" not in repr(config)


def test_in_place_observer_redacts_before_every_other_observer() -> None:
    publisher = LogPublisher()
    stream = io.StringIO()
    publisher.addObserver(observer("json", "debug", stream))
    install(["configured-secret-1"], publisher=publisher)
    log = Logger(namespace="t", observer=publisher)
    log.info("request {uri}", uri="/p?token=configured-secret-1&b=2")
    try:
        raise ValueError("bad Authorization: Bearer configured-secret-1")
    except ValueError:
        log.failure("boom", Failure())
    text = stream.getvalue()
    assert "configured-secret-1" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == f"request /p?token={MASK}&b=2" and first["uri"] == f"/p?token={MASK}&b=2"
    assert "ValueError" in second["failure"] and MASK in second["failure"]
