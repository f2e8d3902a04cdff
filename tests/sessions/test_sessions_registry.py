"""SessionRegistry with fakes: attach / detach / replace, events, the allow-list cache, shutdown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import LogLevel, globalLogPublisher

from sessions_fakes import (
    FakeCollection,
    FakeConnection,
    FakeSink,
    FakeStore,
    clock,
    listener,
    registry,
    sample,
)
from waygps.bus import EventBus
from waygps.drivers.base import utc
from waygps.events import DeviceConnected, DeviceDisconnected
from waygps.sessions import REPLACED

IMEI = "862894020180553"
OTHER = "356307042441013"


def test_attach_delivers_and_publishes_device_connected() -> None:
    sink, bus, reactor = FakeSink(), EventBus(), clock()
    published: list = []
    bus.subscribe(published.append)
    sessions = registry(sink=sink, bus=bus, reactor=reactor)
    conn = FakeConnection(IMEI, peer="10.1.1.1:4000", listener="gv50-tcp-8081")
    sessions.attach(conn)
    assert sessions.get(IMEI) is conn
    assert sessions.connections() == [conn]
    assert sessions.count == 1
    assert sample("waygps_devices_online") == 1
    [event] = sink.events
    assert published == [event]
    assert isinstance(event, DeviceConnected)
    assert (event.imei, event.protocol, event.peer, event.transport, event.listener) == (
        IMEI, "fake", "10.1.1.1:4000", "tcp", "gv50-tcp-8081")
    assert event.server_time == utc(reactor.seconds())
    assert sessions.last_seen(IMEI) == event.server_time


def test_attach_twice_is_one_session() -> None:
    sink = FakeSink()
    sessions = registry(sink=sink)
    conn = FakeConnection(IMEI)
    sessions.attach(conn)
    sessions.attach(conn)
    assert len(sink.events) == 1
    assert conn.closed == []


def test_reconnect_replaces_and_closes_the_old_connection() -> None:
    sink = FakeSink()
    sessions = registry(sink=sink)
    old = FakeConnection(IMEI, peer="10.0.0.1:1000")
    new = FakeConnection(IMEI, peer="10.0.0.2:2000")
    sessions.attach(old)
    sessions.attach(new)
    assert old.closed == [REPLACED]
    assert sessions.get(IMEI) is new
    # The old connection's close arrives later: it must not take the device offline.
    sessions.detach(old, REPLACED)
    assert sessions.get(IMEI) is new
    assert sample("waygps_devices_online") == 1
    assert [type(e) for e in sink.events] == [DeviceConnected, DeviceConnected]
    assert sink.events[-1].peer == "10.0.0.2:2000"


def test_replacing_a_channel_that_detaches_synchronously_keeps_the_device_online() -> None:
    # A UdpPeer's close() calls detach() before returning.
    sink = FakeSink()
    sessions = registry(sink=sink)
    udp = FakeConnection(IMEI, transport_name="udp", registry=sessions)
    tcp = FakeConnection(IMEI)
    sessions.attach(udp)
    sessions.attach(tcp)
    assert udp.closed == [REPLACED]
    assert sessions.get(IMEI) is tcp
    assert not sink.of(DeviceDisconnected)


def test_detach_delivers_device_disconnected_with_the_reason() -> None:
    sink, bus = FakeSink(), EventBus()
    published: list = []
    bus.subscribe(published.append)
    sessions = registry(sink=sink, bus=bus)
    conn = FakeConnection(IMEI)
    sessions.attach(conn)
    sessions.attach(FakeConnection(OTHER))
    sessions.detach(conn, "idle")
    assert sessions.get(IMEI) is None
    assert sessions.last_seen(IMEI) is None
    assert sample("waygps_devices_online") == 1
    [gone] = sink.of(DeviceDisconnected)
    assert (gone.imei, gone.reason, gone.listener, gone.peer) == (IMEI, "idle", conn.listener, conn.peer)
    assert published[-1] is gone
    sessions.detach(conn, "idle")  # a second time: nothing more
    assert len(sink.of(DeviceDisconnected)) == 1


def test_detach_of_an_unknown_connection_is_ignored() -> None:
    sink = FakeSink()
    sessions = registry(sink=sink)
    sessions.detach(FakeConnection(IMEI), "closed by device")
    assert sink.events == []


def test_activity_keeps_last_seen_of_the_current_connection_only() -> None:
    sessions = registry()
    old, new = FakeConnection(IMEI), FakeConnection(IMEI)
    sessions.attach(old)
    sessions.attach(new)
    later = utc(2_000_000_000)
    sessions.activity(old, later)
    assert sessions.last_seen(IMEI) != later
    sessions.activity(new, later)
    assert sessions.last_seen(IMEI) == later


def test_a_failing_sink_is_logged_and_the_session_still_changes() -> None:
    sink = FakeSink()
    sink.failing = True
    sessions = registry(sink=sink)
    seen: list = []
    globalLogPublisher.addObserver(seen.append)
    try:
        sessions.attach(FakeConnection(IMEI))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert sessions.get(IMEI) is not None
    warnings = [e for e in seen if e.get("log_level") == LogLevel.warn and e.get("imei") == IMEI]
    assert warnings and "store down" in warnings[0]["error"]


# --- allow-list ---------------------------------------------------------------


def test_accept_unknown_devices_answers_at_once_without_a_query() -> None:
    store = FakeStore()
    sessions = registry(store=store)
    d = sessions.authorize(IMEI, listener(accept_unknown_devices=True))
    assert d.called and d.result is True
    assert store.vehicles.queries == 0


def test_allow_list_asks_the_vehicles_collection() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    sessions = registry(store=store)
    closed = listener(accept_unknown_devices=False)
    known, unknown = sessions.authorize(IMEI, closed), sessions.authorize(OTHER, closed)
    assert known.result is True
    assert unknown.result is False
    assert store.vehicles.queries == 2


def test_allow_list_answers_are_cached_for_their_ttl() -> None:
    reactor = clock()
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    sessions = registry(store=store, reactor=reactor, known_ttl=60, unknown_ttl=10)
    closed = listener(accept_unknown_devices=False)
    for _ in range(3):
        assert sessions.authorize(IMEI, closed).result is True
        assert sessions.authorize(OTHER, closed).result is False
    assert store.vehicles.queries == 2
    reactor.advance(10)  # the unknown answer expires, the known one not yet
    sessions.authorize(IMEI, closed)
    sessions.authorize(OTHER, closed)
    assert store.vehicles.queries == 3
    store.vehicles.documents.append({"IMEI": OTHER})  # registered meanwhile
    reactor.advance(10)
    assert sessions.authorize(OTHER, closed).result is True
    reactor.advance(60)
    sessions.authorize(IMEI, closed)
    assert store.vehicles.queries == 5


def test_forget_authorization_drops_the_cached_answer() -> None:
    store = FakeStore()
    sessions = registry(store=store)
    closed = listener(accept_unknown_devices=False)
    assert sessions.authorize(IMEI, closed).result is False
    store.vehicles.documents.append({"IMEI": IMEI})
    sessions.forget_authorization(IMEI)
    assert sessions.authorize(IMEI, closed).result is True


def test_allow_list_cache_is_bounded() -> None:
    store = FakeStore()
    sessions = registry(store=store, cache_size=100)
    closed = listener(accept_unknown_devices=False)
    for n in range(1000):
        sessions.authorize(f"{n:015d}", closed)
    assert len(sessions._allow) == 100
    sessions.authorize(f"{999:015d}", closed)  # the newest are kept
    assert store.vehicles.queries == 1000


def test_concurrent_lookups_of_one_device_share_one_query() -> None:
    store = FakeStore(FakeCollection([{"IMEI": IMEI}]))
    store.vehicles.hang = []
    sessions = registry(store=store)
    closed = listener(accept_unknown_devices=False)
    waiting = [sessions.authorize(IMEI, closed) for _ in range(5)]
    assert store.vehicles.queries == 1
    assert not any(d.called for d in waiting)
    store.vehicles.hang[0].callback({"_id": 1})
    assert [d.result for d in waiting] == [True] * 5


def test_a_failed_lookup_fails_every_waiter_and_is_not_cached() -> None:
    store = FakeStore()
    store.vehicles.error = ConnectionError("store unreachable")
    sessions = registry(store=store)
    closed = listener(accept_unknown_devices=False)
    failures: list = []
    sessions.authorize(IMEI, closed).addErrback(failures.append)
    assert failures and failures[0].check(ConnectionError)
    store.vehicles.error = None
    store.vehicles.documents.append({"IMEI": IMEI})
    assert sessions.authorize(IMEI, closed).result is True


def test_a_lookup_that_does_not_answer_fails_after_the_timeout() -> None:
    reactor = clock()
    store = FakeStore()
    store.vehicles.hang = []
    sessions = registry(store=store, reactor=reactor, lookup_timeout=10)
    failures: list = []
    sessions.authorize(IMEI, listener(accept_unknown_devices=False)).addErrback(failures.append)
    reactor.advance(9.9)
    assert failures == []
    reactor.advance(0.1)
    assert failures and failures[0].check(DeferredTimeout)


# --- shutdown -------------------------------------------------------------------


def test_close_all_fires_when_every_channel_detached_and_was_stored() -> None:
    sink = FakeSink()
    sessions = registry(sink=sink)
    conns = [FakeConnection(f"{n:015d}") for n in range(3)]
    for conn in conns:
        sessions.attach(conn)
    sink.hold = True
    done: list = []
    sessions.close_all("server shutting down").addCallback(done.append)
    assert [c.closed for c in conns] == [["server shutting down"]] * 3
    for conn in conns[:2]:
        sessions.detach(conn, "server shutting down")
    assert done == []
    sessions.detach(conns[2], "server shutting down")
    assert done == []  # the DeviceDisconnected writes are still pending
    for d in sink.pending:
        d.callback(None)
    assert done == [None]
    assert len(sink.of(DeviceDisconnected)) == 3


def test_close_all_gives_up_waiting_after_the_stop_timeout() -> None:
    reactor = clock()
    sessions = registry(reactor=reactor, stop_timeout=10)
    stuck = FakeConnection(IMEI)
    sessions.attach(stuck)
    done: list = []
    sessions.close_all("server shutting down").addCallback(done.append)
    reactor.advance(9.9)
    assert done == []
    reactor.advance(0.1)
    assert done == [None]
    sessions.detach(stuck, "server shutting down")  # late: must not raise AlreadyCalled


def test_stop_service_closes_the_channels() -> None:
    sessions = registry()
    conn = FakeConnection(IMEI, registry=sessions)
    sessions.startService()
    sessions.attach(conn)
    done = sessions.stopService()
    assert conn.closed == ["server shutting down"]
    assert isinstance(done, Deferred) and done.called


@pytest.mark.parametrize("seconds", [0, 1800])
def test_last_seen_follows_the_reactor_clock(seconds: float) -> None:
    reactor = clock()
    sessions = registry(reactor=reactor)
    reactor.advance(seconds)
    sessions.attach(FakeConnection(IMEI))
    assert sessions.online_since(IMEI) == utc(reactor.seconds())
    assert sessions.online_since(IMEI) - utc(reactor.seconds() - seconds) == timedelta(seconds=seconds)


def test_session_events_name_this_instance() -> None:
    sink = FakeSink()
    sessions = registry(sink=sink)
    conn = FakeConnection(IMEI)
    sessions.attach(conn)
    sessions.detach(conn, "idle")
    assert [getattr(e, "instance", None) for e in sink.events] == ["test-instance"] * 2
