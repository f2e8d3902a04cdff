"""Twisted's epoll reactor without the legacy logging context around each I/O event.

``twistd --reactor waygps waygps --config FILE`` (``make run`` does) selects it;
plain ``twistd waygps`` runs on Twisted's default reactor and behaves the same.
Linux only, as epoll is (elsewhere ``twistd`` says the reactor cannot be used).

Twisted's epoll reactor calls every ready connection's ``doRead`` or
``doWrite`` through ``twisted.python.log.callWithLogger``: it asks the
connection for its log prefix and pushes a copy of the legacy logging context
holding it, so that a line logged with the old ``twisted.python.log.msg`` API
during the call carries the connection's name. A tracking server handles one
such event per device report, and WayGPS logs through ``twisted.logger``, which
does not read that context: measured with ``benchmarks/bench_twisted_floor.py``,
the context costs a sixth of Twisted's own CPU per acknowledged report
(docs/benchmarks.md). This reactor hands each event straight to the
reactor's own read/write handling, which already catches what a connection
raises, logs it and closes that connection. The only difference is the
``system`` field of legacy log lines written during an event: ``-`` instead of
the connection's prefix.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.logger import Logger

log = Logger()


class WayGPSReactor(EPollReactor):
    def doPoll(self, timeout: float | None) -> None:
        try:
            # At most one event per registered descriptor (as Twisted's own epoll reactor asks).
            ready = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as error:
            if error.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        handle = self._doReadOrWrite
        for fd, event in ready:
            selectable = selectables.get(fd)
            if selectable is None:
                continue  # removed by an earlier event of this same poll
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                # (``_doReadOrWrite`` catches what the connection raises: this is a failure of its own.)
                log.failure("reactor: handling an event of {selectable!r} failed", selectable=selectable)

    doIteration = doPoll


def install() -> Any:
    """Install the WayGPS reactor as Twisted's global reactor (``twistd --reactor waygps`` calls this)."""
    from twisted.internet.main import installReactor

    reactor = WayGPSReactor()
    installReactor(reactor)
    return reactor
