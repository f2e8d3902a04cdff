"""``submit(events, notify)``: the device adapter's way into the persistence service, without a Deferred."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface.verify import verifyObject

from persistence_support import IMEI, OTHER, position
from test_persistence_service import Harness
from waygps.events import Heartbeat
from waygps import persistence
from waygps.interfaces import INotifyingSink
from waygps.persistence import QueueFull, ServiceStopped, StoreUnavailable


def submit(h: Harness, *events: Any) -> list[Any]:
    """What ``notify`` was called with, in order (one element when all is well)."""
    answers: list[Any] = []
    h.service.submit(list(events), answers.append)
    return answers


def test_the_service_offers_submit() -> None:
    assert verifyObject(INotifyingSink, Harness().service)


def test_notify_is_called_once_after_storing_and_after_publishing() -> None:
    h = Harness(batch_size=1)
    published_at_notify: list[int] = []
    answers: list[Any] = []

    def notify(error: Any) -> None:
        answers.append(error)
        published_at_notify.append(len(h.published))

    h.service.submit([position()], notify)
    assert answers == [] and len(h.inserts) == 1
    h.inserts[0].succeed()
    assert answers == [None] and published_at_notify == [1]


def test_answers_given_at_once() -> None:
    h = Harness(batch_size=1, queue_limit=1)
    t = position().server_time
    assert submit(h, Heartbeat(imei=IMEI, protocol="gv50", server_time=t)) == [None]  # nothing to insert
    submit(h, position(key="a"))  # in flight
    submit(h, position(key="b"))
    [full] = submit(h, position(key="c"), position(key="d"), position(key="e"))  # over the hard cap
    assert isinstance(full, QueueFull)
    h.service._finish_stop(None)
    [stopped] = submit(h, position(key="f"))
    assert isinstance(stopped, ServiceStopped)


def test_a_timeout_answers_once_and_a_late_success_does_not_answer_again() -> None:
    h = Harness(batch_size=1, store_timeout=2.0)
    answers = submit(h, position())
    h.clock.advance(2.1)
    assert len(answers) == 1 and isinstance(answers[0], StoreUnavailable)
    h.inserts[0].succeed()
    assert len(answers) == 1


def test_a_notify_that_raises_is_logged_and_the_rest_of_the_batch_is_answered(monkeypatch: Any) -> None:
    h = Harness(batch_size=2)
    logged: list[dict] = []
    monkeypatch.setattr(persistence, "log", Logger(namespace="waygps.persistence", observer=logged.append))

    def broken(error: Any) -> None:
        raise RuntimeError("adapter bug")

    h.service.submit([position(key="a")], broken)
    answers = submit(h, position(imei=OTHER, key="b"))
    h.inserts[0].succeed()
    assert answers == [None]
    assert any("notify callable raised" in e.get("log_format", "") for e in logged)
    assert h.service.pending == 0
