"""``/health``: 200 when the store answers and every listener is up, 503 otherwise.

The body is JSON naming each check, so a load balancer needs the status code
only and an operator reads which part is failing::

    {"status": "unavailable", "failing": ["store"],
     "checks": [{"name": "store", "ok": false, "detail": "no answer within 3 s"},
                {"name": "listener gv50-tcp-8081", "ok": true, "detail": "listening"}]}

A check is a :class:`Check`: a name and a probe returning ``(ok, detail)``, a
bare bool, or a Deferred of either. A probe that raises, fails or does not
answer within the timeout counts as failing, with the reason as detail.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from attrs import frozen
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

log = Logger(namespace="waygps.web")


@frozen
class Check:
    name: str
    probe: Callable[[], Any]


@frozen
class Result:
    name: str
    ok: bool
    detail: str


def store_check(store: Any, name: str = "store") -> Check:
    """The shared ``MongoStore`` answers ``ping``."""

    def probe() -> Any:
        if store.connection is None:
            return False, "not connected"
        return store.ping().addCallback(lambda ok: (bool(ok), "ping ok" if ok else "ping answered not ok"))

    return Check(name, probe)


def listening_check(name: str, port: Callable[[], Any]) -> Check:
    """``port()`` returns the listener's ``IListeningPort`` (or ``None`` while it is not listening)."""

    def probe() -> tuple[bool, str]:
        bound = port()
        if bound is None:
            return False, "not listening"
        host = bound.getHost()
        return True, f"listening on {getattr(host, 'host', '?')}:{getattr(host, 'port', '?')}"

    return Check(name, probe)


def _result(name: str, value: Any) -> Result:
    if isinstance(value, tuple):
        ok, detail = value
        return Result(name, bool(ok), str(detail))
    return Result(name, bool(value), "ok" if value else "failing")


def _failed(name: str, failure: Failure, timeout: float) -> Result:
    if failure.check(DeferredTimeout):
        return Result(name, False, f"no answer within {timeout:g} s")
    return Result(name, False, failure.getErrorMessage() or failure.type.__name__)


def run_checks(checks: Sequence[Check], reactor: Any, timeout: float = 3.0) -> Deferred:
    """Deferred[list[Result]], in the order of ``checks``; never fails."""
    pending = []
    for check in checks:
        d = maybeDeferred(check.probe)
        d.addTimeout(timeout, reactor)
        d.addCallbacks(lambda value, name=check.name: _result(name, value),
                       lambda failure, name=check.name: _failed(name, failure, timeout))
        pending.append(d)
    return DeferredList(pending).addCallback(lambda results: [value for _, value in results])


def health_body(results: Sequence[Result]) -> tuple[int, dict[str, Any]]:
    failing = [r.name for r in results if not r.ok]
    body = {
        "status": "unavailable" if failing else "ok",
        "failing": failing,
        "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results],
    }
    return (503 if failing else 200), body


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, checks: Sequence[Check], reactor: Any, timeout: float = 3.0) -> None:
        super().__init__()
        self.checks = list(checks)
        self.reactor = reactor
        self.timeout = timeout
        self._last_failing: list[str] = []

    def render_GET(self, request: Any) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(results: list[Result]) -> None:
            code, body = health_body(results)
            if body["failing"] != self._last_failing:  # log changes, not every probe of a balancer
                if body["failing"]:
                    log.warn("health: failing: {failing}", failing=", ".join(body["failing"]))
                else:
                    log.info("health: every check passes again")
                self._last_failing = body["failing"]
            if gone:
                return
            request.setResponseCode(code)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            request.write(json.dumps(body).encode("utf-8") + b"\n")
            request.finish()

        run_checks(self.checks, self.reactor, self.timeout).addCallback(answer).addErrback(
            lambda f: log.failure("health check", f))
        return NOT_DONE_YET
