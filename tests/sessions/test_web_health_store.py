"""/health's store check against the real embedded store, and against a store that does not answer."""

from __future__ import annotations

import socket
import pytest
import pytest_twisted
from twisted.internet import reactor

from waygps.config import MongoConfig
from waygps.store.connection import MongoStore
from waygps.web.health import run_checks, store_check

pytestmark = pytest.mark.integration


@pytest_twisted.inlineCallbacks
def test_store_check_passes_when_the_store_answers(mongo_uri: str, mongo_db_name: str) -> None:
    store = MongoStore(MongoConfig(uri=mongo_uri, database=mongo_db_name), mongo_uri, pool_size=1)
    store.connect()
    try:
        [result] = yield run_checks([store_check(store)], reactor, timeout=10)
    finally:
        yield store.close()
    assert (result.name, result.ok, result.detail) == ("store", True, "ping ok")


@pytest_twisted.inlineCallbacks
def test_store_check_fails_when_the_store_is_gone() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    uri = f"mongodb://127.0.0.1:{free}/"
    store = MongoStore(MongoConfig(uri=uri), uri, pool_size=1)
    [never_connected] = yield run_checks([store_check(store)], reactor, timeout=1)
    assert (never_connected.ok, never_connected.detail) == (False, "not connected")
    store.connect()
    try:
        [result] = yield run_checks([store_check(store)], reactor, timeout=0.5)
    finally:
        yield store.close()
    assert (result.ok, result.detail) == (False, "no answer within 0.5 s")
