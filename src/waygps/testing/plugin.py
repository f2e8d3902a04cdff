"""The pytest plugin (entry point ``pytest11``): fixtures for a real WayGPS with the embedded store.

Installed with WayGPS, so a driver package's tests get them with no conftest:

* ``mongo_uri`` (session): the embedded store started once, or ``WAYGPS_TEST_MONGODB_URI``;
* ``mongo_db_name``: a fresh database name, dropped after the test;
* ``start_server``: ``server = yield start_server(listeners=[{"driver": "gv50"}], persistence={...})``;
* ``waygps_server``: ``server = yield waygps_server("example", transport="tcp", max_line=256)`` - one
  listener of the given driver (keyword arguments are its options).

Tests that use them are ``pytest_twisted.inlineCallbacks`` functions.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterator

import pytest
from twisted.internet.defer import inlineCallbacks

from waygps.testing.server import RunningServer, start_waygps
from waygps.testing.store import StoreProcess


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    external = os.environ.get("WAYGPS_TEST_MONGODB_URI")
    if external:
        yield external
        return
    store = StoreProcess()
    try:
        yield store.uri
    finally:
        store.stop()


def fresh_database(uri: str, prefix: str = "t_") -> Iterator[str]:
    """A fresh database name on ``uri`` (a generator for fixtures); the database is dropped afterwards,
    and a store already gone by then is not the test's failure."""
    import pymongo

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    yield name
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    except pymongo.errors.PyMongoError:
        pass  # best effort: a test database left behind is named uniquely and harms no other test
    finally:
        client.close()


@pytest.fixture
def mongo_db_name(mongo_uri: str) -> Iterator[str]:
    """A fresh database name, dropped after the test."""
    yield from fresh_database(mongo_uri)


@pytest.fixture
def start_server(mongo_uri: str, mongo_db_name: str) -> Iterator[Any]:
    """``server = yield start_server(listeners=[{"driver": "gv50"}], persistence={...})``; stopped after."""
    running: list[RunningServer] = []

    @inlineCallbacks
    def start(listeners: Any = (), **sections: Any) -> Any:
        server = yield start_waygps(mongo_uri, mongo_db_name, listeners, **sections)
        running.append(server)
        return server

    yield start
    import pytest_twisted  # only where the fixture is used: the plugin loads in every pytest run

    for server in reversed(running):
        pytest_twisted.blockon(server.stop())


@pytest.fixture
def waygps_server(start_server: Any) -> Any:
    """``server = yield waygps_server("mydriver", transport="udp", **options)``: one listener of a driver."""

    def start(driver: str, transport: str = "tcp", *, listener: dict[str, Any] | None = None,
              **options: Any) -> Any:
        spec = {"driver": driver, "transport": transport, **(listener or {})}
        if options:
            spec["options"] = options
        return start_server(listeners=[spec])

    return start


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "integration: needs the embedded store or WAYGPS_TEST_MONGODB_URI")
