"""The cluster part of the server: lease, and on a replica set the fleet-wide feed.

Started after the command service and before the listeners open:

* the lease (every store): this instance's heartbeat document, the expiry of
  the others (:mod:`~waygps.cluster.lease`);
* on a replica set (``hello`` answers a ``setName``) and unless
  ``cluster.feed = "local"``: the change-stream follower drives a feed bus of
  its own, which the WebSocket feed listens to, so a dashboard on any instance
  sees every device; alarms are stored for it; takeover closes connections
  another instance took; commands are written only by the holder;
* on a standalone MongoDB: the feed is this instance's bus, which startup says
  in one line.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger

from waygps.bus import EventBus
from waygps.cluster.alarms import AlarmRecorder
from waygps.cluster.changes import ChangeReader
from waygps.cluster.follower import ChangeFollower
from waygps.cluster.lease import LeaseKeeper
from waygps.cluster.takeover import Takeover
from waygps.events import FeedReset, StoreStatus

log = Logger(namespace="waygps.cluster")

READY_TIMEOUT = 15.0


@inlineCallbacks
def replica_set_name(store: Any) -> Any:
    """The replica set's name, or ``None`` for a standalone server."""
    admin = store.connection.admin
    try:
        answer = yield admin.command("hello")
    except Exception:
        answer = yield admin.command("isMaster")
    name = answer.get("setName")
    return str(name) if name else None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("waygps")
    except Exception:
        return "unknown"


class ClusterService:
    """``start()`` / ``stop()`` called by :class:`waygps.service.WayGPSService`."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.config = server.config.cluster
        self.instance_id = server.instance_id
        self.set_name: str | None = None
        self.lease: LeaseKeeper | None = None
        self.follower: ChangeFollower | None = None
        self.reader = ChangeReader(server.config.mongodb.collections)
        self.takeover = Takeover(server.store, server.sessions, server.instance_id)
        self.alarms: AlarmRecorder | None = None
        self.feed: Any = server.bus
        self._forward: Any = None

    @property
    def fleet_feed(self) -> bool:
        return self.follower is not None

    @inlineCallbacks
    def start(self) -> Any:
        server = self.server
        self.lease = LeaseKeeper(server.store, self.instance_id, self.config, server.reactor,
                                 devices=lambda: server.sessions.count, version=_version(), publisher=server.bus)
        yield self.lease.start()
        try:
            self.set_name = yield replica_set_name(server.store)
        except Exception as e:
            log.warn("cluster: could not tell whether the store is a replica set ({error})", error=e)
            self.set_name = None
        if self.set_name is None or self.config.feed == "local":
            why = "the store is a standalone MongoDB" if self.set_name is None else 'cluster.feed = "local"'
            log.info("feed: instance-local (in-process bus; {why}): dashboards here see only the devices "
                     "connected to instance {instance}", why=why, instance=self.instance_id)
            self.feed = server.bus
            return None
        self.feed = EventBus()
        # Whether this instance can store is its own news: its clients hear it from its bus.
        self._forward = server.bus.subscribe(
            lambda event: self.feed.publish(event) if isinstance(event, StoreStatus) else None)
        self.alarms = AlarmRecorder(server.store, server.bus)
        server.commands.holder = self.takeover.holds
        collections = server.config.mongodb.collections
        instances = collections.instances
        database = server.config.mongodb.database
        instance_id = self.instance_id

        def load_token(client: Any) -> Any:
            doc = client[database][instances].find_one({"_id": instance_id}, {"resumeToken": 1})
            return (doc or {}).get("resumeToken")

        def save_token(client: Any, token: Any) -> None:
            client[database][instances].update_one({"_id": instance_id}, {"$set": {"resumeToken": token}})

        self.follower = ChangeFollower(server.store.uri, database, self.reader.names, server.reactor,
                                       on_changes=self._changes, on_reset=self._reset,
                                       load_token=load_token, save_token=save_token)
        ready = self.follower.start()
        ready.addTimeout(READY_TIMEOUT, server.reactor)
        try:
            yield ready
        except Exception:
            log.warn("cluster: change stream not open after {timeout:g} s; the feed starts when it opens",
                     timeout=READY_TIMEOUT)
        log.info("feed: fleet-wide (change streams of replica set {name}; instance {instance})",
                 name=self.set_name, instance=self.instance_id)
        return None

    def _changes(self, changes: list[Any]) -> None:
        for change in changes:
            for event in self.reader.read(change):
                self.feed.publish(event)
            holder = self.reader.holder(change)
            if holder is not None:
                self.takeover.seen(*holder)

    def _reset(self, reason: str) -> None:
        now = datetime.fromtimestamp(self.server.reactor.seconds(), timezone.utc)
        self.feed.publish(FeedReset(reason=reason, time=now))

    def stop(self) -> Deferred:
        if self._forward is not None:
            self._forward()
            self._forward = None
        parts = []
        if self.follower is not None:
            parts.append(self.follower.stop())
        if self.alarms is not None:
            self.alarms.stop()
        if self.lease is not None:
            parts.append(self.lease.stop())
        if not parts:
            return succeed(None)
        return DeferredList(parts, consumeErrors=True).addCallback(lambda _: None)

