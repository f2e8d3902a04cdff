"""Shared fixtures come from the installed pytest plugin ``waygps.testing.plugin`` (entry point
``pytest11``): ``mongo_uri`` (the embedded store once per session), ``mongo_db_name``,
``start_server`` and ``waygps_server``.

``WAYGPS_TEST_MONGODB_URI`` runs the same integration tests against an
existing MongoDB instead of the embedded SecantusDB. The names below are
re-exported for the tests that import them from here.
"""

from __future__ import annotations

from waygps.testing.server import RunningServer, server_config
from waygps.testing.store import STORE_START_TIMEOUT, StoreProcess, free_port

__all__ = ["RunningServer", "STORE_START_TIMEOUT", "StoreProcess", "free_port", "server_config"]
