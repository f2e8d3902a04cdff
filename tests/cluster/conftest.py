"""Fixtures of the cluster tests: a replica-set store (its own process) and instances on it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from tests.cluster.cluster_support import Instance, ReplicaStore, instance_config
from waygps.testing.plugin import fresh_database


@pytest.fixture(scope="session")
def replica_store() -> Iterator[ReplicaStore]:
    store = ReplicaStore()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def cluster_db(replica_store: ReplicaStore) -> Iterator[str]:
    yield from fresh_database(replica_store.uri, prefix="c_")


@pytest.fixture
def start_instance(replica_store: ReplicaStore, cluster_db: str) -> Iterator[Any]:
    """``a = yield start_instance("a")``: a WayGPS instance on the replica-set store (free ports)."""
    from twisted.internet import reactor

    from waygps.drivers import find_drivers
    from waygps.service import WayGPSService

    running: list[Instance] = []

    @inlineCallbacks
    def start(instance: str, uri: str | None = None, **sections: Any) -> Any:
        config = instance_config(uri or replica_store.uri, cluster_db, instance, **sections)
        service = WayGPSService(config, find_drivers(), reactor)
        service.startService()
        yield service.started
        server = Instance(service, cluster_db, uri or replica_store.uri)
        running.append(server)
        return server

    yield start
    for server in reversed(running):
        if server.service.running:
            pytest_twisted.blockon(server.stop())
