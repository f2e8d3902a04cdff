"""The MongoDB connection every service shares (txmongo)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from txmongo.connection import ConnectionPool

from waygps.config import MongoConfig

log = Logger(namespace="waygps.store")


def redact(uri: str) -> str:
    """The URI without its password, for logs."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}"
    return f"{scheme}{sep}{rest}"


class MongoStore:
    """A txmongo pool bound to the configured database and collection names.

    txmongo reconnects by itself after a lost connection; operations issued
    meanwhile fail, and the services above decide what that means.
    """

    def __init__(self, config: MongoConfig, uri: str, pool_size: int = 4, max_delay: float = 30.0) -> None:
        self.config = config
        self.uri = uri
        self.pool_size = pool_size
        self.max_delay = max_delay
        self.connection: ConnectionPool | None = None

    def connect(self) -> None:
        # max_delay caps txmongo's reconnect backoff (its default waits up to 60 s after an outage).
        # retry_delay is left alone: txmongo also uses it as the connect timeout.
        self.connection = ConnectionPool(self.uri, pool_size=self.pool_size, watchdog_timeout=30,
                                         max_delay=self.max_delay)

    @property
    def db(self) -> Any:
        assert self.connection is not None, "MongoStore.connect() first"
        return self.connection[self.config.database]

    def collection(self, kind: str) -> Any:
        """``kind`` is ``positions``, ``vehicles`` or ``commands`` (names from the configuration)."""
        return self.db[getattr(self.config.collections, kind)]

    @inlineCallbacks
    def ping(self) -> Deferred:
        result = yield self.db.command("ping")
        return bool(result.get("ok"))

    def close(self) -> Deferred:
        if self.connection is None:
            from twisted.internet.defer import succeed

            return succeed(None)
        connection, self.connection = self.connection, None
        return connection.disconnect()
