"""The store going away and coming back is published once each way (the feed turns it into system_alert)."""

from __future__ import annotations

from pymongo.errors import AutoReconnect

from persistence_support import position
from test_persistence_service import Harness
from waygps.events import StoreStatus


def statuses(h: Harness) -> list[bool]:
    return [e.available for e in h.published if isinstance(e, StoreStatus)]


def test_unavailable_once_then_available_once_when_a_batch_is_stored_again() -> None:
    h = Harness(batch_size=1, reconnect_max_delay=1.0, store_timeout=60.0)
    h.deliver(position(key="a"))
    h.inserts[0].fail(AutoReconnect("connection refused"))
    assert statuses(h) == [False]
    h.clock.advance(1.0)
    h.inserts[1].fail(AutoReconnect("connection refused"))  # still away: not said again
    assert statuses(h) == [False]
    h.clock.advance(1.0)
    h.inserts[2].succeed()
    assert statuses(h) == [False, True]
    (down, up) = [e for e in h.published if isinstance(e, StoreStatus)]
    assert "connection refused" in down.detail and up.time >= down.time
    h.deliver(position(key="b"))
    h.inserts[3].succeed()
    assert statuses(h) == [False, True]  # a normal batch says nothing


def test_a_store_that_does_not_answer_is_unavailable_after_the_store_timeout() -> None:
    h = Harness(batch_size=1, store_timeout=5.0)
    h.deliver(position(key="a"))
    h.clock.advance(4.9)
    assert statuses(h) == []
    h.clock.advance(0.2)
    assert statuses(h) == [False]
    h.inserts[0].succeed()  # it answers at last
    assert statuses(h) == [False, True]
