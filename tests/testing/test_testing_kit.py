"""waygps.testing itself: the chunked codec runner catches a codec that depends on read sizes, the
factories build what the adapter needs, and the server fixture talks TCP and UDP to a real service."""

from __future__ import annotations

import pytest
import pytest_twisted

from waygps.actions import Rejected, Store
from waygps.drivers import find_drivers
from waygps.testing import (
    NOW, FakeSink, actions_in_every_chunking, chunkings, driver_context, listener_config, run_codec, split,
)


class ReadSizeDependent:
    """A wrong codec: it treats every read as one message."""

    def receive(self, data: bytes, now):
        return [Rejected("read", data)]


def test_chunkings_cover_whole_bytewise_and_random_cuts() -> None:
    data = bytes(range(40))
    ways = list(chunkings(data, random_cuts=5))
    assert ways[0] == [data] and ways[1] == [bytes([b]) for b in data]
    assert all(b"".join(way) == data for way in ways) and len(ways) == 10
    assert split(b"abcdefg", [1, 2]) == [b"a", b"bc", b"d", b"ef", b"g"]


def test_a_codec_that_depends_on_read_sizes_is_caught() -> None:
    with pytest.raises(AssertionError, match="reads of"):
        actions_in_every_chunking(ReadSizeDependent, b"two\nlines\n")


def test_generic_codec_through_the_kit() -> None:
    driver = find_drivers()["generic"]
    listener = listener_config("generic", options=driver.options, ack=False)
    actions = actions_in_every_chunking(lambda: driver.stream_codec(listener),
                                        b"id=123456789012345,lat=1.5,lon=2.5,timestamp=1768478340\n")
    assert isinstance(actions[-1], Store) and actions[-1].ack == b""
    assert run_codec(driver.stream_codec(listener), [b"id=1,", b"lat=x\n"], NOW)[0].reason


def test_driver_context_defaults() -> None:
    context = driver_context(listener_config("generic", "udp", port=5000, ack=False))
    assert context.listener.transport == "udp" and context.listener.port == 5000 and not context.listener.ack
    assert isinstance(context.sink, FakeSink)


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_waygps_server_fixture_over_tcp_and_udp(waygps_server) -> None:
    line = b"id=123456789012345,lat=1.5,lon=2.5,timestamp=1768478340\n"
    tcp = yield waygps_server("generic")
    answer = yield tcp.exchange(line, until=b"\n")
    assert answer == b"OK 1\n"
    udp = yield waygps_server("generic", transport="udp")
    reply = yield udp.datagram(line.replace(b"2.5", b"2.6"))
    assert reply == b"OK 1\n"
    stored = yield udp.positions("123456789012345", count=2)
    assert sorted(doc["longitude"] for doc in stored) == [2.5, 2.6]
