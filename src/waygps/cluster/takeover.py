"""Which instance holds a device now, as the store says.

A device whose link died reconnects (through the load balancer) to another
instance. That instance's ``DeviceConnected`` writes ``Veiculo.instance``; the
change stream brings the new holder to every instance, and the one still
holding an older connection closes it (:meth:`Takeover.seen`). Its
``DeviceDisconnected`` then leaves ``online`` alone, because the document
names another holder (see :mod:`waygps.vehicles`): ``online`` stays true across
the move.

Commands for a device are written only by its holder:
:meth:`Takeover.holds` is the command service's check before it claims one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from waygps import metrics

log = Logger(namespace="waygps.cluster.takeover")

TAKEN_OVER = "taken over by instance"


class Takeover:
    def __init__(self, store: Any, sessions: Any, instance_id: str) -> None:
        self.store = store
        self.sessions = sessions
        self.instance_id = instance_id
        self.closed = 0

    def seen(self, imei: str, holder: str, last_seen: datetime) -> bool:
        """The store says ``holder`` holds ``imei`` (its ``lastSeen`` then); True if a channel was closed.

        A channel of this instance opened after that ``lastSeen`` is newer than
        the other instance's and stays (the other one will learn it the same way).
        """
        if holder == self.instance_id:
            return False
        connection = self.sessions.get(imei)
        if connection is None:
            return False
        since = self.sessions.online_since(imei)
        if since is not None and since > last_seen:
            return False
        self.closed += 1
        metrics.CONNECTIONS_CLOSED.labels(connection.listener, "taken_over").inc()
        log.info("{driver} {imei} {peer}: now held by instance {holder}; closing this instance's connection",
                 driver=connection.protocol, imei=imei, peer=connection.peer, holder=holder)
        connection.close(f"{TAKEN_OVER} {holder}")
        return True

    def holds(self, imei: str) -> Deferred:
        """Deferred[bool]: may this instance write commands to ``imei`` (no other holder in ``Veiculo``)?"""
        d = maybeDeferred(self.store.collection("vehicles").find_one, {"IMEI": imei}, {"instance": 1})

        def decide(doc: Any) -> bool:
            holder = (doc or {}).get("instance")
            return not holder or holder == self.instance_id

        return d.addCallback(decide)
