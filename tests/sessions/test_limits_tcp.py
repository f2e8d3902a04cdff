"""The TCP adapter (drivers/base.py) with the session registry: limits, timeouts, allow-list, reconnects.

MemoryReactorClock drives the timers; StringTransport stands for the socket, so
``connectionLost`` is called by the test where the reactor would call it.
"""

from __future__ import annotations

from typing import Any

from sessions_fakes import (
    DRIVER,
    FakeCollection,
    FakeSink,
    FakeStore,
    clock,
    connect,
    context,
    lose,
    registry,
    sample,
)
from waygps.events import DeviceConnected, DeviceDisconnected, Position

IMEI = "862894020180553"
OTHER = "356307042441013"


def setup(store=None, **listener_values):
    reactor, sink = clock(), FakeSink()
    sessions = registry(store=store, sink=sink, reactor=reactor)
    factory = DRIVER.tcp_factory(context(sessions, sink, reactor, **listener_values))
    return reactor, sink, sessions, factory


def identify(protocol, transport, imei=IMEI):
    protocol.dataReceived(f"ID,{imei}\n".encode())
    assert transport.value().endswith(b"OK\n")


# --- max_connections / max_connections_per_ip -------------------------------------


def test_max_connections_refuses_past_the_limit_and_counts_it() -> None:
    reactor, sink, sessions, factory = setup(name="limit-total", max_connections=2)
    before = sample("waygps_connections_refused_total", listener="limit-total", reason="max_connections")
    first, _ = connect(factory, "10.0.0.1")
    second, _ = connect(factory, "10.0.0.2")
    third, _ = connect(factory, "10.0.0.3")
    assert first is not None and second is not None
    assert third is None
    assert sample("waygps_connections_refused_total", listener="limit-total",
                  reason="max_connections") == before + 1
    lose(first)  # a slot frees up
    fourth, _ = connect(factory, "10.0.0.4")
    assert fourth is not None
    assert len(factory.connections) == 2


def test_max_connections_per_ip_limits_one_address_only() -> None:
    reactor, sink, sessions, factory = setup(name="limit-ip", max_connections_per_ip=2)
    before = sample("waygps_connections_refused_total", listener="limit-ip", reason="max_connections_per_ip")
    a1, _ = connect(factory, "10.0.0.1", 1)
    a2, _ = connect(factory, "10.0.0.1", 2)
    a3, _ = connect(factory, "10.0.0.1", 3)
    b1, _ = connect(factory, "10.0.0.9", 1)
    assert a1 is not None and a2 is not None and b1 is not None
    assert a3 is None
    assert sample("waygps_connections_refused_total", listener="limit-ip",
                  reason="max_connections_per_ip") == before + 1
    lose(a1)
    again, _ = connect(factory, "10.0.0.1", 4)
    assert again is not None


def test_zero_means_no_per_ip_limit() -> None:
    reactor, sink, sessions, factory = setup(max_connections=0, max_connections_per_ip=0)
    protocols = [connect(factory, "10.0.0.1", n)[0] for n in range(200)]
    assert all(p is not None for p in protocols)


def test_open_connections_gauge_follows_connections() -> None:
    reactor, sink, sessions, factory = setup(name="gauge-listener")
    base = sample("waygps_connections_open", listener="gauge-listener")
    p1, _ = connect(factory)
    p2, _ = connect(factory)
    assert sample("waygps_connections_open", listener="gauge-listener") == base + 2
    lose(p1)
    assert sample("waygps_connections_open", listener="gauge-listener") == base + 1


# --- identify timeout (slowloris) and idle timeout ------------------------------------


def test_a_connection_that_does_not_identify_is_closed_after_identify_timeout() -> None:
    reactor, sink, sessions, factory = setup(name="slow", identify_timeout=30)
    before = sample("waygps_connections_closed_total", listener="slow", reason="identify_timeout")
    protocol, transport = connect(factory)
    # Bytes trickle in, but none identifies the device: they must not extend the deadline.
    for _ in range(2):
        reactor.advance(10)
        protocol.dataReceived(b"garbage\n")
    reactor.advance(9.9)
    assert not transport.disconnecting
    reactor.advance(0.1)
    assert transport.disconnecting
    lose(protocol)
    assert sample("waygps_connections_closed_total", listener="slow",
                  reason="identify_timeout") == before + 1
    assert sink.events == []
    assert len(factory.connections) == 0


def test_an_identified_connection_is_not_closed_by_the_identify_timeout() -> None:
    reactor, sink, sessions, factory = setup(identify_timeout=30, idle_timeout=1800)
    protocol, transport = connect(factory)
    identify(protocol, transport)
    reactor.advance(31)
    assert not transport.disconnecting


def test_idle_timeout_closes_the_connection_and_the_device_goes_offline() -> None:
    reactor, sink, sessions, factory = setup(name="idle", idle_timeout=1800)
    protocol, transport = connect(factory)
    identify(protocol, transport)
    assert sessions.get(IMEI) is protocol
    reactor.advance(1000)
    protocol.dataReceived(b"HB\n")  # a heartbeat counts as activity
    assert sessions.last_seen(IMEI).timestamp() == reactor.seconds()
    reactor.advance(1799)
    assert not transport.disconnecting
    reactor.advance(1)
    assert transport.disconnecting
    lose(protocol)
    assert sessions.get(IMEI) is None
    [gone] = sink.of(DeviceDisconnected)
    assert gone.reason == "idle"
    assert sample("waygps_devices_online") == 0


def test_connections_share_one_timer_and_each_expires_at_its_own_deadline() -> None:
    reactor, sink, sessions, factory = setup(name="shared-timer", identify_timeout=30, idle_timeout=100)
    quiet, quiet_transport = connect(factory, "10.0.0.1", 1000)
    reactor.advance(5)
    busy, busy_transport = connect(factory, "10.0.0.2", 1000)
    identify(busy, busy_transport)
    slow, slow_transport = connect(factory, "10.0.0.3", 1000)
    assert len(reactor.getDelayedCalls()) == 1  # not one timer per connection
    reactor.advance(24.9)
    assert not quiet_transport.disconnecting
    reactor.advance(0.1)  # 30 s after it connected, unidentified
    assert quiet_transport.disconnecting and not busy_transport.disconnecting
    lose(quiet)
    reactor.advance(4.9)
    assert not slow_transport.disconnecting
    reactor.advance(0.1)
    assert slow_transport.disconnecting
    lose(slow)
    busy.dataReceived(b"HB\n")  # at 35 s: the idle deadline moves to 135 s
    reactor.advance(99.9)
    assert not busy_transport.disconnecting
    reactor.advance(0.1)
    assert busy_transport.disconnecting
    lose(busy)
    assert factory._expiry is None  # no connection left: no timer left


# --- reconnect -------------------------------------------------------------------


def test_a_device_that_reconnects_replaces_its_old_connection() -> None:
    reactor, sink, sessions, factory = setup(name="reconnect")
    before = sample("waygps_connections_closed_total", listener="reconnect", reason="replaced")
    old, old_transport = connect(factory, "10.0.0.1", 1000)
    identify(old, old_transport)
    new, new_transport = connect(factory, "10.0.0.1", 2000)
    identify(new, new_transport)
    assert old_transport.disconnecting
    assert not new_transport.disconnecting
    lose(old)
    assert sessions.get(IMEI) is new
    assert not sink.of(DeviceDisconnected)
    assert [e.peer for e in sink.of(DeviceConnected)] == ["10.0.0.1:1000", "10.0.0.1:2000"]
    new.dataReceived(b"POS,7\n")
    assert new_transport.value().endswith(b"ACK,7\n")
    assert sample("waygps_connections_closed_total", listener="reconnect", reason="replaced") == before + 1


# --- allow-list --------------------------------------------------------------------


def test_allow_list_refuses_an_unregistered_device_after_its_first_frame() -> None:
    store = FakeStore(FakeCollection([{"IMEI": OTHER}]))
    reactor, sink, sessions, factory = setup(store=store, name="closed-tcp", accept_unknown_devices=False)
    before = sample("waygps_connections_refused_total", listener="closed-tcp", reason="unknown_device")
    protocol, transport = connect(factory, "203.0.113.7", 4242)
    protocol.dataReceived(f"ID,{IMEI}\nPOS,1\nPOS,2\n".encode())
    assert transport.value() == b"NO\n"
    assert transport.disconnecting
    lose(protocol)
    assert sink.events == []  # nothing stored, not even a session
    assert sessions.get(IMEI) is None
    assert sample("waygps_connections_refused_total", listener="closed-tcp",
                  reason="unknown_device") == before + 1


def test_allow_list_serves_a_registered_device() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    reactor, sink, sessions, factory = setup(store=store, accept_unknown_devices=False)
    protocol, transport = connect(factory)
    protocol.dataReceived(f"ID,{IMEI}\nPOS,1\n".encode())
    assert transport.value() == b"OK\nACK,1\n"
    assert [e.key for e in sink.of(Position)] == ["1"]
    assert sessions.get(IMEI) is protocol


def test_reports_wait_for_a_slow_allow_list_answer_and_are_stored_after_it() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    store.vehicles.hang = []
    reactor, sink, sessions, factory = setup(store=store, accept_unknown_devices=False)
    protocol, transport = connect(factory)
    protocol.dataReceived(f"ID,{IMEI}\nPOS,1\n".encode())
    assert transport.value() == b""
    assert sink.events == []
    store.vehicles.hang[0].callback({"_id": 1})
    assert transport.value() == b"OK\nACK,1\n"


def test_allow_list_store_failure_closes_the_connection() -> None:
    store = FakeStore()
    store.vehicles.error = ConnectionError("store unreachable")
    reactor, sink, sessions, factory = setup(store=store, name="closed-fail", accept_unknown_devices=False)
    protocol, transport = connect(factory)
    protocol.dataReceived(f"ID,{IMEI}\nPOS,1\n".encode())
    assert transport.disconnecting
    lose(protocol)
    assert sink.events == []
    assert sample("waygps_connections_closed_total", listener="closed-fail",
                  reason="refused") == 1


def test_a_second_identity_on_one_connection_cannot_store_reports() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    reactor, sink, sessions, factory = setup(store=store, accept_unknown_devices=False)
    protocol, transport = connect(factory)
    identify(protocol, transport)
    protocol.dataReceived(f"ID,{OTHER}\nPOS,9\n".encode())  # the codec now reports as OTHER
    assert [e.imei for e in sink.of(Position)] == []


# --- what a sink answers -------------------------------------------------------------


def test_a_sink_that_answers_with_a_plain_value_or_raises() -> None:
    reactor, sink, sessions, factory = setup(name="sink-answers")
    protocol, transport = connect(factory, "10.0.0.9")
    identify(protocol, transport)
    sink.deliver = lambda events: None  # answered at once, without a Deferred: stored
    protocol.dataReceived(b"POS,1\n")
    assert transport.value().endswith(b"OK\nACK,1\n")

    def broken(events):
        raise RuntimeError("sink bug")

    sink.deliver = broken  # never acknowledged, logged, and the connection goes on
    before = sample("waygps_acks_withheld_total", driver="fake")
    protocol.dataReceived(b"POS,2\n")
    assert not transport.value().endswith(b"ACK,2\n")
    assert sample("waygps_acks_withheld_total", driver="fake") == before + 1
    assert not transport.disconnecting


class NotifyingSink(FakeSink):
    """A sink with ``submit``: the adapter hands it a callable instead of waiting on a Deferred."""

    def __init__(self) -> None:
        super().__init__()
        self.notifies: list[Any] = []
        self.raising = False

    def submit(self, events: Any, notify: Any) -> None:
        if self.raising:
            raise RuntimeError("sink bug")
        self.events.extend(events)
        self.notifies.append(notify)


def test_a_notifying_sink_gets_no_deferred_and_acks_keep_report_order() -> None:
    from waygps.interfaces import INotifyingSink
    from zope.interface import directlyProvides

    reactor, sink, sessions, factory = setup(name="sink-notify")
    notifying = NotifyingSink()
    directlyProvides(notifying, INotifyingSink)
    factory = DRIVER.tcp_factory(context(sessions, notifying, reactor, name="sink-notify"))
    protocol, transport = connect(factory, "10.0.0.10")
    identify(protocol, transport)
    notifying.deliver = None  # the adapter must not use it
    protocol.dataReceived(b"POS,1\nPOS,2\nPOS,3\n")
    assert len(notifying.notifies) == 3 and transport.value().endswith(b"OK\n")
    before_sent = sample("waygps_acks_sent_total", driver="fake")
    before_withheld = sample("waygps_acks_withheld_total", driver="fake")
    notifying.notifies[1](None)  # the second is stored first: it waits for the first
    assert transport.value().endswith(b"OK\n")
    notifying.notifies[0](None)
    assert transport.value().endswith(b"OK\nACK,1\nACK,2\n")
    notifying.notifies[2](RuntimeError("store down"))  # not stored: never acknowledged
    notifying.notifies[2](None)  # a second answer changes nothing
    assert transport.value().endswith(b"OK\nACK,1\nACK,2\n")
    assert sample("waygps_acks_sent_total", driver="fake") == before_sent + 2
    assert sample("waygps_acks_withheld_total", driver="fake") == before_withheld + 1
    assert len(protocol._acks) == 0

    notifying.raising = True  # the sink's own bug: logged, not acknowledged, the connection goes on
    protocol.dataReceived(b"POS,4\n")
    assert not transport.value().endswith(b"ACK,4\n")
    assert sample("waygps_acks_withheld_total", driver="fake") == before_withheld + 2
    assert not transport.disconnecting
