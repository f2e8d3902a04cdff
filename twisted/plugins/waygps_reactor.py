"""``twistd --reactor waygps``: Twisted's epoll reactor without the per-event legacy log context."""

from twisted.application.reactors import Reactor

waygps = Reactor("waygps", "waygps.reactor", "epoll, without the legacy log context per I/O event (WayGPS)")
