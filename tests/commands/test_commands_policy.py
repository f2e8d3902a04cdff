"""Pure decisions: retries, expiry, the speed guard, ordering, serials, answers (no store, no reactor I/O)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from twisted.internet import task

from waygps.commands import policy
from waygps.commands.record import new_command
from waygps.config import CommandsConfig

CONFIG = CommandsConfig(ack_timeout=60.0, max_attempts=3, expiry_hours=24.0, block_max_speed_kmh=20.0)


@pytest.fixture
def clock():
    c = task.Clock()
    c.advance(1_790_000_000)
    return c


def now_of(clock: task.Clock) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), timezone.utc)


def command(kind: str, created: datetime, n: int = 0, **fields):
    doc = new_command("862894020180553", kind, _params(kind), created, 24, "t", "t")
    doc["_id"] = f"c{n}"
    doc.update(fields)
    return doc


def _params(kind: str):
    return {"set_server": {"host": "h.example", "port": 5004}, "set_apn": {"apn": "internet"},
            "custom": {"text": "getver"}}.get(kind, {})


def kinds(decisions):
    return [(type(d).__name__, d.doc["_id"]) for d in decisions]


def moving(speed, now, age=0.0, **more):
    return policy.Motion(speed=speed, speed_at=now - timedelta(seconds=age), **more)


def test_speed_guard_thresholds(clock):
    now = now_of(clock)
    guard = lambda motion, **kw: policy.speed_guard(motion, now, 20, 600, **kw)  # noqa: E731
    assert guard(moving(20.0, now)) is None
    assert guard(moving(20.5, now)) == "vehicle moving: last known speed 20.5 km/h is above the 20 km/h block limit"
    assert policy.speed_guard(moving(300.0, now), now, 0, 600) is None, "limit 0 switches the guard off"


def test_unknown_or_stale_speed_waits_unless_forced(clock):
    now = now_of(clock)
    guard = lambda motion, **kw: policy.speed_guard(motion, now, 20, 600, **kw)  # noqa: E731
    unknown = guard(policy.Motion())
    assert unknown == ("vehicle movement unknown: no speed reported; waits for a fresh report at or below 20 km/h "
                       "(or an explicit override: force)")
    stale = guard(moving(0.0, now, age=601))
    assert stale.startswith("vehicle movement unknown: last speed 0 km/h is 601 s old (older than 600 s)")
    assert guard(moving(0.0, now, age=600)) is None, "exactly max_age old is still fresh"
    assert guard(policy.Motion(), force=True) is None
    assert guard(moving(0.0, now, age=9999), force=True) is None
    assert guard(moving(95.0, now), force=True).startswith("vehicle moving"), "force never overrides a known speed"


def test_ignition_off_counts_as_stopped_only_when_fresh(clock):
    now = now_of(clock)
    guard = lambda motion: policy.speed_guard(motion, now, 20, 600)  # noqa: E731
    assert guard(policy.Motion(ignition=False, ignition_at=now - timedelta(seconds=30))) is None
    assert guard(policy.Motion(ignition=False, ignition_at=now - timedelta(seconds=700))) is not None
    assert guard(policy.Motion(ignition=True, ignition_at=now)) is not None
    assert guard(moving(80.0, now, ignition=False, ignition_at=now)).startswith("vehicle moving"), \
        "a fresh speed decides before the ignition"


def test_plan_sends_the_oldest_and_queues_the_rest(clock):
    now = now_of(clock)
    docs = [command("reboot", now, 1), command("request_position", now, 2)]
    assert kinds(policy.plan(docs, now, None, CONFIG)) == [("Send", "c1"), ("Queue", "c2")]


def test_plan_holds_a_block_at_speed_and_lets_other_commands_pass(clock):
    now = now_of(clock)
    docs = [command("block", now, 1), command("unblock", now, 2), command("request_position", now, 3),
            command("block", now, 4)]
    decisions = policy.plan(docs, now, moving(45.0, now), CONFIG)
    assert kinds(decisions) == [("Wait", "c1"), ("Wait", "c2"), ("Send", "c3"), ("Wait", "c4")]
    assert decisions[0].kind == "speed" and decisions[1].kind == "order"
    assert decisions[1].reason == "waiting behind the earlier block/unblock command c1"


def test_plan_guards_every_command_the_driver_says_cuts_the_engine(clock):
    now = now_of(clock)
    docs = [command("custom", now, 1, params={"text": "setdigout 1"}), command("custom", now, 2),
            command("request_position", now, 3)]
    cuts = lambda doc: doc["params"].get("text") == "setdigout 1"  # noqa: E731
    decisions = policy.plan(docs, now, moving(95.0, now), CONFIG, cuts)
    assert kinds(decisions) == [("Wait", "c1"), ("Wait", "c2"), ("Send", "c3")]
    assert decisions[0].reason == decisions_reason(95.0) and decisions[0].kind == "speed"
    assert decisions[1].kind == "order", "a later custom command does not overtake a waiting engine cut"
    assert kinds(policy.plan(docs, now, moving(5.0, now), CONFIG, cuts)) == [
        ("Send", "c1"), ("Queue", "c2"), ("Queue", "c3")]
    # Without the driver's word the same custom command is not an engine cut.
    assert kinds(policy.plan(docs[:1], now, moving(95.0, now), CONFIG)) == [("Send", "c1")]


def decisions_reason(speed):
    return f"vehicle moving: last known speed {speed:g} km/h is above the 20 km/h block limit"


def test_plan_block_with_unknown_speed_waits_and_force_lets_it_go(clock):
    now = now_of(clock)
    decisions = policy.plan([command("block", now, 1)], now, None, CONFIG)
    assert kinds(decisions) == [("Wait", "c1")] and decisions[0].reason.startswith("vehicle movement unknown")
    forced = command("block", now, 1, force=True)
    assert kinds(policy.plan([forced], now, None, CONFIG)) == [("Send", "c1")]
    assert policy.forced_past_unknown(forced, None, now, CONFIG)
    assert not policy.forced_past_unknown(forced, moving(3.0, now), now, CONFIG)
    assert kinds(policy.plan([forced], now, moving(60.0, now), CONFIG)) == [("Wait", "c1")]
    assert kinds(policy.plan([command("block", now, 1, force="yes")], now, None, CONFIG)) == [("Wait", "c1")], \
        "only a boolean true is an override"


def test_plan_unblock_is_never_held_by_speed(clock):
    now = now_of(clock)
    assert kinds(policy.plan([command("unblock", now, 1)], now, moving(120.0, now), CONFIG)) == [("Send", "c1")]


def test_plan_block_goes_out_once_slow_or_guard_off(clock):
    now = now_of(clock)
    docs = [command("block", now, 1)]
    assert kinds(policy.plan(docs, now, moving(5.0, now), CONFIG)) == [("Send", "c1")]
    off = CommandsConfig(block_max_speed_kmh=0.0)
    assert kinds(policy.plan(docs, now, moving(130.0, now), off)) == [("Send", "c1")]
    assert kinds(policy.plan(docs, now, None, off)) == [("Send", "c1")]


def test_plan_expires_and_rejects_without_sending(clock):
    created = now_of(clock)
    clock.advance(24 * 3600)
    now = now_of(clock)
    docs = [command("block", created, 1), command("reboot", now, 2, type="explode"),
            command("set_server", now, 3, params={"host": "x", "port": 99999}), command("reboot", now, 4)]
    decisions = policy.plan(docs, now, None, CONFIG)
    assert kinds(decisions) == [("Finish", "c1"), ("Finish", "c2"), ("Finish", "c3"), ("Send", "c4")]
    assert [d.status for d in decisions[:3]] == ["expired", "failed", "failed"]
    assert decisions[0].reason.startswith("not delivered before ")
    assert decisions[2].reason == "invalid command: params.port must be a port number 1-65535, got 99999"


def test_expiry_from_created_when_missing(clock):
    now = now_of(clock)
    doc = {"createdAt": now}
    assert policy.expires_at(doc, CONFIG) == now + timedelta(hours=24)
    assert policy.expires_at({}, CONFIG) is None


def test_after_lost_ack_retries_then_fails_or_expires(clock):
    now = now_of(clock)
    doc = command("block", now, 1, attempts=1)
    assert policy.after_lost_ack(doc, now, CONFIG, "no acknowledgement within 60 s") == (
        "pending", "no acknowledgement within 60 s; will be sent again (attempt 1 of 3 done)")
    doc["attempts"] = 3
    assert policy.after_lost_ack(doc, now, CONFIG, "x") == ("failed", "x; no acknowledgement after 3 attempt(s)")
    clock.advance(25 * 3600)
    doc["attempts"] = 1
    assert policy.after_lost_ack(doc, now_of(clock), CONFIG, "x") == ("expired", "x; expired")


def test_pick_serial_avoids_recent_serials():
    rng = random.Random(7)
    used = {f"{i:04X}" for i in range(1, 0x10000) if i != 0x0ABC}
    assert policy.pick_serial(used, rng) == "0ABC"
    serial = policy.pick_serial(set(), random.Random(1))
    assert len(serial) == 4 and int(serial, 16) > 0


def test_ack_fits_by_type_or_protocol_word():
    block = {"type": "block", "frame": "AT+GTOUT=gv50,1,,,0,0,0,0,0,0,0,,,,,,,00A1$"}
    assert policy.ack_fits(block, None)
    assert policy.ack_fits(block, "GTOUT")
    assert not policy.ack_fits(block, "GTSRI")
    assert policy.ack_fits(block, "block")
    assert not policy.ack_fits(block, "set_server")
    custom = {"type": "custom", "frame": "AT+GTRTO=gv50,3,,,,,,0001$"}
    assert policy.ack_fits(custom, "reboot")
    assert policy.ack_fits({"type": "reboot"}, "GTRTO"), "no frame recorded: the serial decides"


def test_ack_outcome():
    assert policy.ack_outcome({}, True, "DOUT1:ON") == ("confirmed", "acknowledged by the device: DOUT1:ON")
    assert policy.ack_outcome({}, False, "") == ("failed", "refused by the device: (no text)")


def test_a_lost_link_does_not_use_up_an_attempt_but_is_bounded() -> None:
    from datetime import datetime, timedelta, timezone

    from waygps.commands import policy
    from waygps.config import CommandsConfig

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    config = CommandsConfig(max_attempts=3)
    doc = {"attempts": 3, "linkLosses": 0, "createdAt": now, "expiresAt": now + timedelta(hours=1)}
    assert policy.link_lost_is_free(doc)
    status, reason = policy.after_lost_ack(doc, now, config, "connection closed", attempt_counts=False)
    assert status == "pending" and "does not count" in reason
    status, _ = policy.after_lost_ack(doc, now, config, "no acknowledgement", attempt_counts=True)
    assert status == "failed"
    assert not policy.link_lost_is_free({"linkLosses": policy.MAX_LINK_LOSSES})
    status, _ = policy.after_lost_ack({**doc, "expiresAt": now}, now, config, "connection closed",
                                      attempt_counts=False)
    assert status == "expired"
