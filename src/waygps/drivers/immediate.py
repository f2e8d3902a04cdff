"""Small writes sent at once on an idle TCP connection.

Twisted's ``transport.write`` only queues: the bytes go out on the reactor's
next turn, after the descriptor is registered for writing (one ``epoll_ctl``),
reported writable (one more event to dispatch) and unregistered (another
``epoll_ctl``). For an acknowledgement of a few bytes on a connection with
nothing queued, sending straight away does the same with one ``send``: about
a third of what Twisted itself costs per acknowledged report
(``benchmarks/bench_twisted_floor.py --direct``). Whenever the connection is
not plainly idle (bytes already queued, TLS, a producer, closing) or the
transport is not one of Twisted's own TCP connections, ``transport.write``
does the job as usual, so order and back-pressure are Twisted's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

# Twisted's POSIX TCP connections: their buffer attributes (read below) are the same since long
# before 23.10. Should a release rename ``_tempDataLen``, the default makes every write a plain one.
_PLAIN_TCP = (tcp.Server, tcp.Client)


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sent in this call when the connection has nothing queued."""
    if (type(transport) in _PLAIN_TCP and not transport.TLS and transport.connected
            and not transport.disconnecting and not transport._writeDisconnecting
            and not transport._writeDisconnected and transport.producer is None
            and not transport.dataBuffer and not getattr(transport, "_tempDataLen", 1)):
        sent = transport.writeSomeData(data)
        if type(sent) is int and sent > 0:
            if sent >= len(data):
                return
            data = data[sent:]
        # Nothing sent (a full socket buffer) or an error: Twisted queues it, and its next write
        # attempt meets the same error and closes the connection the usual way.
    transport.write(data)
