"""The no-op :class:`IStatsRecorder`: what drivers and persistence call when no collector is running."""

from __future__ import annotations

from typing import Any, Iterable

from zope.interface import implementer

from waygps.interfaces import IStatsRecorder


@implementer(IStatsRecorder)
class NullStats:
    def received(self, listener: str, events: Iterable[Any]) -> None:
        pass

    def rejected(self, listener: str, reason: str) -> None:
        pass

    def flagged(self, listener: str, reason: str) -> None:
        pass

    def duplicate(self, imei: str, protocol: str) -> None:
        pass


NULL_STATS = NullStats()
