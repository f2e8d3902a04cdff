"""Commands are written only by the instance the store names as the device's holder."""

from __future__ import annotations

import pytest_twisted

from tests.commands.commands_harness import FakeConnection, harness  # noqa: F401  (fixture)
from waygps.cluster.takeover import Takeover

IMEI = "862894020180553"


@pytest_twisted.inlineCallbacks
def test_a_device_held_by_another_instance_gets_no_command_from_this_one(harness):  # noqa: F811
    harness.vehicle(IMEI, bloqueado=False, comandoBloqueo=True, online=True, instance="instance-b")
    service = yield harness.start("instance-a")
    service.holder = Takeover(service.store, harness.sessions, "instance-a").holds
    device = harness.sessions.connect(FakeConnection(IMEI))  # A still has an old channel of it
    yield harness.settle()
    yield harness.advance(6.0)
    assert device.sent == []
    assert harness.only_command(IMEI)["status"] == "pending"

    harness.vehicle(IMEI, instance="instance-a")  # the store names A again: A sends it
    yield harness.advance(4.0)
    assert [c.type for c in device.sent] == ["block"]
    assert harness.only_command(IMEI)["instance"] == "instance-a"


@pytest_twisted.inlineCallbacks
def test_takeover_closes_only_an_older_channel(harness):  # noqa: F811
    from datetime import timedelta

    takeover = Takeover(None, harness.sessions, "instance-a")
    harness.sessions.online_since = lambda imei: harness.now()  # the registry's answer for this channel
    device = harness.sessions.connect(FakeConnection(IMEI))
    assert takeover.seen(IMEI, "instance-a", harness.now()) is False  # this instance itself
    assert takeover.seen(IMEI, "instance-b", harness.now() - timedelta(seconds=5)) is False  # ours is newer
    assert device.closed is None
    assert takeover.seen(IMEI, "instance-b", harness.now() + timedelta(seconds=1)) is True
    assert device.closed == "taken over by instance instance-b"
    assert takeover.seen("other", "instance-b", harness.now()) is False  # not held here
    yield harness.settle()
