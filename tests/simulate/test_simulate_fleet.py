"""The Twisted runner on a fake reactor: ramp-up, timers, re-sends after a missing ack, reconnects, stop."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from simulate_support import T0, replies, when
from waygps.drivers.gv50.codec import Gv50StreamCodec
from waygps.simulate.device import DeviceSettings
from waygps.simulate.fleet import Fleet, FleetOptions


def fleet(**options: Any) -> tuple[MemoryReactorClock, Fleet]:
    reactor = MemoryReactorClock()
    reactor.advance(T0)
    settings = DeviceSettings(ack_timeout=options.pop("ack_timeout", 20.0), heartbeat=options.pop("heartbeat", 0.0))
    values: dict[str, Any] = dict(driver="gv50", host="127.0.0.1", port=5004, devices=3, interval=10.0,
                                  ramp_up=3.0, settings=settings, reconnect_delay=2.0)
    values.update(options)
    return reactor, Fleet(reactor, FleetOptions(**values))


def connect(reactor: MemoryReactorClock, index: int) -> tuple[Any, StringTransport]:
    factory = reactor.tcpClients[index][2]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def advance(reactor: MemoryReactorClock, seconds: float, step: float = 0.25) -> None:
    for _ in range(int(seconds / step)):
        reactor.advance(step)


def test_devices_connect_over_the_ramp_up_and_report_at_their_interval() -> None:
    reactor, f = fleet(ack_timeout=300.0)
    f.start()
    reactor.advance(0)
    assert len(reactor.tcpClients) == 1  # the first at once, the others over 3 s
    advance(reactor, 1.0)
    assert len(reactor.tcpClients) == 2
    advance(reactor, 2.0)
    assert [c[:2] for c in reactor.tcpClients] == [("127.0.0.1", 5004)] * 3
    links = [connect(reactor, i) for i in range(3)]
    assert f.stats.connected == 3
    advance(reactor, 30.0)
    for _, transport in links:
        frames = transport.value().split(b"$")[:-1]
        assert 2 <= len(frames) <= 4 and all(x.startswith(b"+RESP:") for x in frames)


def test_a_report_without_sack_goes_again_as_buff_after_the_timeout_and_a_sack_ends_it() -> None:
    reactor, f = fleet(devices=1, ramp_up=0.0, interval=1000.0, ack_timeout=20.0)
    f.start()
    reactor.advance(0)
    protocol, transport = connect(reactor, 0)
    while b"$" not in transport.value():  # the first report comes at a random phase of the interval
        reactor.advance(0.25)
    [first] = transport.value().split(b"$")[:-1]
    transport.clear()
    advance(reactor, 19.5)
    assert transport.value() == b""  # not before the timeout
    advance(reactor, 1.0)
    assert transport.value() == b"+BUFF:" + first[6:] + b"$"
    codec = Gv50StreamCodec()
    protocol.dataReceived(replies(codec.receive(transport.value(), when(reactor.seconds()))))
    transport.clear()
    advance(reactor, 60.0, step=1.0)
    assert transport.value() == b""  # acknowledged: nothing more to re-send
    assert (f.stats.sent, f.stats.resent, f.stats.acked) == (1, 1, 1)


def test_a_lost_connection_is_opened_again_and_the_pending_reports_replayed() -> None:
    reactor, f = fleet(devices=1, ramp_up=0.0, interval=5.0)
    f.start()
    reactor.advance(0)
    protocol, transport = connect(reactor, 0)
    advance(reactor, 12.0)
    sent = transport.value().split(b"$")[:-1]
    assert len(sent) == 2
    protocol.connectionLost(Failure(ConnectionDone()))
    assert f.stats.connected == 0 and f.stats.disconnects == 1
    advance(reactor, 3.5)  # reconnect_delay 2 s with jitter (1-3 s)
    assert len(reactor.tcpClients) == 2
    _, again = connect(reactor, 1)
    assert again.value().split(b"$")[:2] == [b"+BUFF:" + frame[6:] for frame in sent]


def test_closed_loop_sends_the_next_report_when_the_last_is_acknowledged() -> None:
    reactor, f = fleet(devices=1, ramp_up=0.0, interval=0.0)
    f.start()
    reactor.advance(0)
    protocol, transport = connect(reactor, 0)
    codec = Gv50StreamCodec()
    for _ in range(5):
        data = transport.value()
        transport.clear()
        assert data.count(b"$") == 1
        protocol.dataReceived(replies(codec.receive(data, when(reactor.seconds()))))
        reactor.advance(0)
    assert f.stats.acked == 5


def test_reports_per_device_then_stop_when_all_are_acknowledged() -> None:
    reactor, f = fleet(devices=1, ramp_up=0.0, interval=1.0, reports=3)
    done = f.start()
    reactor.advance(0)
    protocol, transport = connect(reactor, 0)
    codec = Gv50StreamCodec()
    advance(reactor, 5.0)
    assert transport.value().count(b"+RESP:") == 3
    assert not done.called
    protocol.dataReceived(replies(codec.receive(transport.value(), when(reactor.seconds()))))
    advance(reactor, 1.0)
    assert transport.disconnecting  # stopping: the connection is being closed
    protocol.connectionLost(Failure(ConnectionDone()))
    result: list = []
    done.addCallback(result.append)
    assert result and result[0].acked == 3 and result[0].summary(reactor.seconds())["unacknowledged"] == 0
