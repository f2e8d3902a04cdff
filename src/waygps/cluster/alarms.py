"""Alarms stored where every instance sees them (the ``Alarme`` collection).

Only a replica set needs this: the fleet-wide feed turns the inserted
documents back into ``system_alert`` messages on every instance. The recorder
listens on the local bus, which carries alarms only after the report that
raised them was stored; the ``_id`` is deterministic, so a re-sent report
stores its alarm once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from waygps.cluster.changes import alarm_document
from waygps.events import Alarm

log = Logger(namespace="waygps.cluster.alarms")

DUPLICATE_KEY = 11000


class AlarmRecorder:
    def __init__(self, store: Any, publisher: Any) -> None:
        self.store = store
        self.stored = 0
        self._unsubscribe = publisher.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, Alarm):
            return
        doc = alarm_document(event)
        d = maybeDeferred(self.store.collection("alarms").insert_one, doc)

        def stored(_: Any) -> None:
            self.stored += 1

        def failed(failure: Any) -> None:
            if getattr(failure.value, "code", None) == DUPLICATE_KEY:
                return  # stored already (a re-sent report)
            log.warn("{driver} {imei}: alarm {alarm} not stored for the fleet feed: {error}",
                     driver=event.protocol, imei=event.imei, alarm=event.alarm,
                     error=failure.getErrorMessage() or failure.type.__name__)

        d.addCallbacks(stored, failed)

    def stop(self) -> None:
        self._unsubscribe()
