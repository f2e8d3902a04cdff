"""The Twisted side of the simulator: one connection per device, timers, ramp-up and reconnects.

Devices connect one after another over ``ramp_up`` seconds. A single timer
(every ``tick`` seconds) walks the devices: a report when its interval has
passed (each device starts at a random phase, so reports spread over the
interval), a heartbeat when its link was idle for the heartbeat interval, and
the re-sends of reports whose acknowledgement is overdue. With ``interval =
0`` a device sends its next report as soon as the previous one is
acknowledged (closed loop: the most the server takes). A lost connection is
opened again after ``reconnect_delay`` (with jitter), and the device sends
its unacknowledged reports first.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from attrs import field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from waygps.drivers.immediate import write_now
from waygps.simulate import MODELS
from waygps.simulate.device import DeviceModel, DeviceSettings, imei_of
from waygps.simulate.stats import Stats
from waygps.simulate.track import Route, Track, destination

log = Logger(namespace="waygps.simulate")


@frozen
class FleetOptions:
    driver: str
    host: str
    port: int
    devices: int = 10
    #: Seconds between a device's reports; 0 = the next one as soon as the last is acknowledged.
    interval: float = 10.0
    duration: float | None = None
    #: Reports per device, after which the device only waits for its acknowledgements.
    reports: int | None = None
    udp: bool = False
    ramp_up: float = 0.0
    settings: DeviceSettings = DeviceSettings()
    seed: int = 1
    center: tuple[float, float] = (-17.7833, -63.1821)  # Santa Cruz de la Sierra
    spread_km: float = 10.0
    route: Route | None = field(default=None, eq=False)
    first_device: int = 0
    imei_prefix: str = "35"
    reconnect_delay: float = 5.0
    tick: float = 0.25
    #: With ``reports``: seconds to wait for the last acknowledgements before giving up.
    drain: float = 60.0
    #: A device's first report comes at a random time within this many seconds after the ramp-up
    #: slot (default: one interval, so the fleet's reports spread evenly).
    first_report_within: float | None = None


class DeviceLink:
    """One device: its model, its connection and its schedule."""

    __slots__ = ("fleet", "model", "transport", "next_report", "made", "connecting", "done_sending")

    def __init__(self, fleet: "Fleet", model: DeviceModel, first_report: float) -> None:
        self.fleet = fleet
        self.model = model
        self.transport: Any = None
        self.next_report = first_report
        self.made = 0
        self.connecting = False
        self.done_sending = False

    def write(self, chunks: list[bytes]) -> None:
        if self.transport is None:
            return
        for chunk in chunks:  # on UDP each chunk is one datagram
            write_now(self.transport, chunk)

    # --- connection events ----------------------------------------------------------------------
    def up(self, transport: Any) -> None:
        self.transport = transport
        self.connecting = False
        stats = self.fleet.stats
        stats.connected += 1
        stats.connects += 1
        now = self.fleet.now()
        self.write(self.model.connected(now))
        if self.fleet.options.interval == 0 and self.model.idle:
            self.send_report(now)

    def data(self, data: bytes) -> None:
        self.write(self.model.receive(data, self.fleet.now()))

    def down(self) -> None:
        if self.transport is not None:
            self.fleet.stats.connected -= 1
            if not self.fleet.stopping:  # closed by the server or the network, not by our stop()
                self.fleet.stats.disconnects += 1
        self.transport = None
        self.connecting = False
        self.model.disconnected(self.fleet.now())
        self.fleet.lost(self)

    def failed(self) -> None:
        self.connecting = False
        self.fleet.stats.connect_failures += 1
        self.fleet.lost(self)

    # --- the schedule -----------------------------------------------------------------------------
    def send_report(self, now: float) -> None:
        limit = self.fleet.options.reports
        if limit is not None and self.made >= limit:
            self.done_sending = True
            return
        if self.fleet.stopping or self.fleet.draining:
            return
        self.made += 1
        self.write(self.model.report(now))

    def acknowledged(self, model: DeviceModel, now: float) -> None:
        if self.fleet.options.interval == 0 and self.transport is not None:
            self.fleet.reactor.callLater(0, self.send_report, self.fleet.now())

    def tick(self, now: float) -> None:
        options = self.fleet.options
        if self.transport is None:
            return
        model = self.model
        if options.interval > 0 and now >= self.next_report:
            self.send_report(now)
            self.next_report += options.interval
            if self.next_report < now:
                self.next_report = now + options.interval
        if options.reports is not None and self.made >= options.reports:
            self.done_sending = True
        heartbeat = options.settings.heartbeat
        if heartbeat and now - model.last_sent >= heartbeat:
            self.write(model.heartbeat(now))
        self.write(model.expired(now))


class _Stream(Protocol):
    def __init__(self, link: DeviceLink) -> None:
        self.link = link

    def connectionMade(self) -> None:
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:  # small frames go out at once, as a device's do
            no_delay(True)
        self.link.up(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.link.data(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.link.down()


class _Factory(ClientFactory):
    def __init__(self, link: DeviceLink) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> _Stream:
        return _Stream(self.link)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.link.failed()


class _Datagrams(DatagramProtocol):
    def __init__(self, link: DeviceLink, host: str, port: int) -> None:
        self.link = link
        self.host = host
        self.port = port

    def startProtocol(self) -> None:
        self.transport.connect(self.host, self.port)
        self.link.up(self.transport)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.link.data(data)

    def connectionRefused(self) -> None:
        pass  # nobody listening right now: the reports stay pending and go again after the timeout


class Fleet:
    """``Fleet(reactor, options).start()`` -> Deferred[Stats], fired when the run ends."""

    def __init__(self, reactor: Any, options: FleetOptions, stats: Stats | None = None) -> None:
        if options.driver not in MODELS:
            raise ValueError(f"unknown driver {options.driver!r} (simulated: {', '.join(MODELS)})")
        self.reactor = reactor
        self.options = options
        self.stats = stats or Stats()
        self.stopping = False
        self.draining = False  # no new reports; waiting for the last acknowledgements
        self.done: Deferred = Deferred()
        self.links: list[DeviceLink] = []
        self._timer: LoopingCall | None = None
        self._calls: list[Any] = []
        self._host = options.host
        self.on_stop: list[Callable[[], None]] = []

    def now(self) -> float:
        return self.reactor.seconds()

    # --- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        options = self.options
        now = self.now()
        model_class = MODELS[options.driver]
        for n in range(options.devices):
            index = options.first_device + n
            rng = random.Random(f"{options.seed}:{index}")
            lat, lon = destination(options.center[0], options.center[1], rng.uniform(0, 360),
                                   rng.uniform(0, options.spread_km * 1000))
            track = Track(rng, now, lat, lon, route=options.route)
            model = model_class(imei_of(index, options.imei_prefix), track, options.settings, self.stats, rng)
            spread = options.interval if options.first_report_within is None else options.first_report_within
            first = now + options.ramp_up * n / max(1, options.devices) + rng.uniform(0, max(spread, 0.0))
            link = DeviceLink(self, model, first)
            model.on_ack = link.acknowledged
            self.links.append(link)
        self.stats.devices = len(self.links)

    def start(self) -> Deferred:
        self.stats.started = self.now()
        if self.options.udp and not _is_ip(self._host):
            d = self.reactor.resolve(self._host)
            d.addCallbacks(self._resolved, self._fail)
        else:
            self._begin()
        return self.done

    def _resolved(self, address: str) -> None:
        self._host = address
        self._begin()

    def _fail(self, failure: Any) -> None:
        if not self.done.called:
            self.done.errback(failure)

    def _begin(self) -> None:
        options = self.options
        self._build()
        count = len(self.links)
        for n, link in enumerate(self.links):
            delay = options.ramp_up * n / max(1, count)
            self._calls.append(self.reactor.callLater(delay, self._connect, link))
        self._timer = LoopingCall(self._tick)
        self._timer.clock = self.reactor
        self._timer.start(options.tick, now=False)
        if options.duration is not None:
            self._calls.append(self.reactor.callLater(options.duration, self.finish_sending))

    def _connect(self, link: DeviceLink) -> None:
        if self.stopping or link.connecting or link.transport is not None:
            return
        link.connecting = True
        if self.options.udp:
            self.reactor.listenUDP(0, _Datagrams(link, self._host, self.options.port))
        else:
            self.reactor.connectTCP(self._host, self.options.port, _Factory(link), timeout=30)

    def lost(self, link: DeviceLink) -> None:
        if self.stopping:
            self._maybe_finished()
            return
        delay = self.options.reconnect_delay * random.uniform(0.5, 1.5)
        self._calls.append(self.reactor.callLater(delay, self._connect, link))

    # --- running --------------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.now()
        for link in self.links:
            link.tick(now)
        self._calls = [c for c in self._calls if c.active()]
        if self.options.reports is not None and not self.stopping:
            if all(link.done_sending for link in self.links):
                if all(link.model.idle for link in self.links):
                    self.stop()
                elif not hasattr(self, "_drain_deadline"):
                    self._drain_deadline = now + self.options.drain
                elif now >= self._drain_deadline:
                    log.warn("simulate: {n} reports still unacknowledged after {s}s; stopping",
                             n=sum(len(link.model.pending) for link in self.links), s=self.options.drain)
                    self.stop()

    def finish_sending(self) -> None:
        """End of ``duration``: no new reports; stop once the sent ones are acknowledged (or after
        ``ack_timeout``, with what is left counted as unacknowledged)."""
        if self.draining or self.stopping:
            return
        self.draining = True
        self.stats.ended = self.now()
        deadline = self.now() + self.options.settings.ack_timeout

        def check() -> None:
            if self.stopping:
                return
            if all(link.model.idle for link in self.links) or self.now() >= deadline:
                self.stop()
            else:
                self._calls.append(self.reactor.callLater(0.1, check))

        check()

    def stop(self) -> Deferred:
        """Stop sending, close every connection; ``done`` fires with the stats once they are closed."""
        if self.stopping:
            return self.done
        self.stopping = True
        if not self.draining:
            self.stats.ended = self.now()
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        for call in self._calls:
            if call.active():
                call.cancel()
        for callback in self.on_stop:
            callback()
        for link in self.links:
            if link.transport is not None:
                if self.options.udp:
                    transport, link.transport = link.transport, None
                    self.stats.connected -= 1
                    transport.stopListening()
                else:
                    link.transport.loseConnection()
        self._calls = [self.reactor.callLater(5.0, self._finish)]  # connections that do not close
        self._maybe_finished()
        return self.done

    def _maybe_finished(self) -> None:
        if self.stopping and all(link.transport is None for link in self.links):
            self._finish()

    def _finish(self) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()
        if not self.done.called:
            self.done.callback(self.stats)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
