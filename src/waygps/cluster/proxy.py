"""The PROXY protocol (v1 and v2) in front of a TCP device listener.

Behind a TCP load balancer every connection comes from the balancer; with
``proxy_protocol = true`` on a listener, the balancer's first bytes (the PROXY
header) say who the device is. Twisted's ``twisted.protocols.haproxy`` parses
the header; this wrapper differs from its ``HAProxyWrappingFactory`` in one
way that matters here: the device protocol is built only once the header is
read, with the device's address, so that the listener's limits
(``max_connections_per_ip``), its logs and its metrics see the device, not the
balancer. A connection whose header is missing, malformed, too long or late
is logged, counted (``waygps_connections_refused{reason="proxy_header"}``)
and closed; nothing reaches the driver.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser

from waygps import metrics

log = Logger(namespace="waygps.cluster.proxy")

V1_MAX = 107  # the longest v1 line, CRLF included
V2_MAX = 16 + 4096  # addresses plus TLVs
HEADER_TIMEOUT = 10.0


class ProxiedConnection(policies.ProtocolWrapper):
    """Reads the PROXY header, then behaves as the device's transport (``getPeer`` = the device)."""

    def __init__(self, factory: "ProxyHeaderFactory", wrappedProtocol: Any = None) -> None:
        super().__init__(factory, wrappedProtocol)  # type: ignore[arg-type]
        self.factory: ProxyHeaderFactory = factory
        self._parser: V1Parser | V2Parser | None = None
        self._buffer = b""
        self._source: Any = None
        self._destination: Any = None
        self._timer: Any = None

    def makeConnection(self, transport: Any) -> None:
        # The device protocol does not exist yet: it is built once the header names the device.
        self.factory.registerProtocol(self)
        Protocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        self._timer = self.factory.reactor.callLater(self.factory.timeout, self._refuse, "no PROXY header in time")

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.disconnecting:
            return
        self._buffer += data
        try:
            if self._parser is None:
                head = self._buffer
                if head[:12] == V2Parser.PREFIX[:len(head)] and len(head) < 16:
                    return  # maybe v2: its fixed part is 16 bytes
                if head[:12] == V2Parser.PREFIX:
                    self._parser = V2Parser()
                elif head[:6] == b"PROXY "[:len(head)]:
                    if len(head) < 6:
                        return
                    self._parser = V1Parser()
                else:
                    self._refuse("no PROXY header")
                    return
            limit = V2_MAX if isinstance(self._parser, V2Parser) else V1_MAX
            data, self._buffer = self._buffer, b""
            info, remaining = self._parser.feed(data)
            if info is None:
                if len(self._parser.buffer) > limit:
                    self._refuse("PROXY header too long")
                return
        except InvalidProxyHeader as e:
            self._refuse(f"malformed PROXY header ({type(e).__name__})")
            return
        self._start(info, remaining or b"")

    def _start(self, info: Any, remaining: bytes) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        # A LOCAL header (the balancer's own health check) names no device: keep the real addresses.
        self._source = info.source
        self._destination = info.destination
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            self.transport.loseConnection()  # refused by the listener's limits (logged there)
            return
        self.wrappedProtocol = protocol
        protocol.makeConnection(self)
        if remaining and self.wrappedProtocol is not None:
            protocol.dataReceived(remaining)

    def _refuse(self, why: str) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        real = self.transport.getPeer()
        metrics.CONNECTIONS_REFUSED.labels(self.factory.listener_name, "proxy_header").inc()
        log.warn("{peer}: connection refused on {listener}: {why}", peer=f"{real.host}:{real.port}",
                 listener=self.factory.listener_name, why=why)
        self.transport.abortConnection()

    def getPeer(self) -> Any:
        if self._source is not None:
            return self._source
        return self.transport.getPeer()

    def getHost(self) -> Any:
        if self._destination is not None:
            return self._destination
        return self.transport.getHost()

    def connectionLost(self, reason: Any) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.factory.unregisterProtocol(self)
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.connectionLost(reason)
            self.wrappedProtocol = None  # type: ignore[assignment]


class ProxyHeaderFactory(policies.WrappingFactory):
    """Wraps a listener's device factory; see the module docstring."""

    protocol = ProxiedConnection  # type: ignore[assignment]
    noisy = False

    def __init__(self, wrappedFactory: Any, reactor: Any, listener_name: str,
                 timeout: float = HEADER_TIMEOUT) -> None:
        super().__init__(wrappedFactory)
        self.reactor = reactor
        self.listener_name = listener_name
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> ProxiedConnection:
        return ProxiedConnection(self)
