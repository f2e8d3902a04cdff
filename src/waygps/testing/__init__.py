"""Testing a WayGPS driver from outside the project: fakes, codec runners, a real server fixture.

Installed with WayGPS. The fixtures (``mongo_uri``, ``mongo_db_name``,
``start_server``, ``waygps_server``) come from ``waygps.testing.plugin``, which
pytest loads by itself (entry point ``pytest11``). See ``docs/writing-a-driver.md``.
"""

from waygps.testing.codecs import (
    NOW,
    actions_in_every_chunking,
    chunkings,
    driver_context,
    listener_config,
    run_codec,
    split,
)
from waygps.testing.fakes import FakeSessions, FakeSink, HeldSink
from waygps.testing.server import DeviceConnection, RunningServer, server_config, start_waygps
from waygps.testing.store import StoreProcess, free_port

__all__ = [
    "NOW", "DeviceConnection", "FakeSessions", "FakeSink", "HeldSink", "RunningServer", "StoreProcess",
    "actions_in_every_chunking", "chunkings", "driver_context", "free_port", "listener_config", "run_codec",
    "server_config", "split", "start_waygps",
]
