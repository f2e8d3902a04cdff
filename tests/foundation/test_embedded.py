"""The embedded store service: a real secantusd-py child, started, pinged, restarted with its data, stopped."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from tests.conftest import free_port
from waygps.config import EmbeddedConfig, MongoConfig
from waygps.store.connection import MongoStore
from waygps.store.embedded import EmbeddedStore, StoreError


@pytest_twisted.inlineCallbacks
def test_embedded_store_keeps_data_across_restarts(tmp_path: Path) -> None:
    config = EmbeddedConfig(data_dir=str(tmp_path / "db"), port=free_port())
    for round_ in range(2):
        embedded = EmbeddedStore(config, reactor)
        embedded.startService()
        yield embedded.ready()
        store = MongoStore(MongoConfig(database="keep"), embedded.uri)
        store.connect()
        vehicles = store.collection("vehicles")
        if round_ == 0:
            yield vehicles.insert_one({"IMEI": "123456789012345", "ds_placa": "ABC1234"})
        else:
            found = yield vehicles.find_one({"IMEI": "123456789012345"})
            assert found["ds_placa"] == "ABC1234"
        yield store.close()
        yield embedded.stopService()
        assert embedded.process.ended.called


@pytest_twisted.inlineCallbacks
def test_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    config = EmbeddedConfig(data_dir=str(tmp_path / "db"), port=free_port(), command="no-such-secantusd")
    embedded = EmbeddedStore(config, reactor)
    try:
        embedded.startService()
    except StoreError as e:
        assert "not found" in str(e) and "waygps[embedded]" in str(e)
    else:
        raise AssertionError("startService should refuse")
    yield None


@pytest_twisted.inlineCallbacks
def test_store_that_dies_at_startup_fails_ready(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = EmbeddedConfig(data_dir=str(blocker / "db"), port=free_port(), startup_timeout=20)
    embedded = EmbeddedStore(config, reactor)
    try:
        embedded.startService()
        yield embedded.ready()
    except StoreError as e:
        assert "data_dir" in str(e) or "exited" in str(e) or "did not listen" in str(e)
    else:
        raise AssertionError("ready() should fail")
    finally:
        yield embedded.stopService()
