"""Log observers: Twisted's text format, or one JSON object per line for log collectors.

A JSON line holds ``time`` (ISO 8601 UTC), ``level``, ``namespace``,
``message`` (the formatted text), ``failure`` (a traceback, when there is
one), and every field of the event as its own key — ``driver``, ``imei``,
``peer``, ``listener``, ``why`` ... — so a collector can filter on a device
without parsing text::

    {"time": "2025-01-07T10:00:00.123456Z", "level": "info", "namespace": "waygps.device",
     "message": "gv50 860000000000001 10.0.0.5:40312: identified on gv50-tcp-8081",
     "driver": "gv50", "imei": "860000000000001", "peer": "10.0.0.5:40312", "listener": "gv50-tcp-8081"}

twistd builds its log observer *after* ``makeService`` and takes the
application's ``ILogObserver`` component when it has one, so the service
maker wraps its service with :func:`observed`::

    return observed(build_service(...), observer(log_format, config.logging.level))

(``twistd --logger waygps.logs.json_logger`` works too, without the wrapper.)
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any, Mapping

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.application.service import IService, MultiService
from twisted.python.components import Componentized
from zope.interface import implementer

_RESERVED = ("time", "level", "namespace", "message", "failure")
# Keys Twisted and its legacy ``log.msg`` bridge put on events: not fields of ours.
_INTERNAL = frozenset({"format", "message", "isError", "system", "time", "why", "failure", "printed"})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (bytes, bytearray)):
        return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in value[:256])
    if isinstance(value, (list, tuple)) and len(value) <= 50:
        return [_plain(v) for v in value]
    return str(value)


def event_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready dict of one ``twisted.logger`` event."""
    when = event.get("log_time")
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": (datetime.fromtimestamp(when, timezone.utc).isoformat().replace("+00:00", "Z")
                 if isinstance(when, (int, float)) else None),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(dict(event)),
    }
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["failure"] = failure.getTraceback()
        except Exception:  # a broken failure must not lose the line
            record["failure"] = repr(failure)
    for key, value in event.items():
        if key.startswith("log_") or key in _INTERNAL:
            continue
        name = f"{key}_" if key in _RESERVED else key
        record[name] = _plain(value)
    return record


@implementer(ILogObserver)
class JsonLineObserver:
    """Writes each event as one line of JSON to ``stream`` and flushes it."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Mapping[str, Any]) -> None:
        try:
            line = json.dumps(event_record(event), ensure_ascii=False, default=str)
        except Exception as error:  # an observer must never raise into the logging system
            line = json.dumps({"level": "error", "namespace": "waygps.logs",
                               "message": f"unserialisable log event: {error!r}"})
        self.stream.write(line + "\n")
        self.stream.flush()


def observer(format: str = "text", level: str = "info", stream: IO[str] | None = None) -> ILogObserver:
    """The observer for ``[logging] format`` (``text`` / ``json``) and ``level``
    (``debug`` / ``info`` / ``warn`` / ``error``)."""
    stream = stream if stream is not None else sys.stdout
    base = JsonLineObserver(stream) if format == "json" else textFileLogObserver(stream)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(base, [predicate])


def json_logger() -> ILogObserver:
    """For ``twistd --logger waygps.logs.json_logger``: JSON lines on stdout, level info."""
    return observer("json", "info")


class _Observed(MultiService):
    """Holds the real service; registers the observer on the twistd application it joins."""

    def __init__(self, service: IService, log_observer: ILogObserver) -> None:
        super().__init__()
        self.observer = log_observer
        self.service = service
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.observer)
        super().setServiceParent(parent)


def observed(service: IService, log_observer: ILogObserver) -> MultiService:
    """``service`` wrapped so that twistd logs through ``log_observer``
    (unless ``twistd --logger`` names another one)."""
    return _Observed(service, log_observer)
