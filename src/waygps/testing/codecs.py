"""Run a codec without a network: listener settings, a driver context, bytes in any chunking."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

from waygps.actions import Action
from waygps.config import ListenerConfig

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


def listener_config(driver: str = "test", transport: str = "tcp", *, options: dict[str, Any] | None = None,
                    **settings: Any) -> ListenerConfig:
    """A ``ListenerConfig`` as the service would build it (port 0); ``settings`` are its other keys
    (``ack=False``, ``accept_unknown_devices=False``...), ``options`` the driver's own keys."""
    return ListenerConfig(driver=driver, port=settings.pop("port", 0), transport=transport,
                          host=settings.pop("host", "127.0.0.1"), options=dict(options or {}), **settings)


def driver_context(listener: ListenerConfig | None = None, *, sink: Any = None, sessions: Any = None,
                   reactor: Any = None) -> Any:
    """A ``DriverContext`` for ``driver.tcp_factory(...)`` / ``udp_protocol(...)`` in a protocol test:
    a ``FakeSink`` and ``FakeSessions`` unless given, and a ``MemoryReactorClock``."""
    from twisted.internet.testing import MemoryReactorClock

    from waygps.drivers.base import DriverContext
    from waygps.testing.fakes import FakeSessions, FakeSink

    return DriverContext(listener=listener or listener_config(), sink=sink if sink is not None else FakeSink(),
                         sessions=sessions if sessions is not None else FakeSessions(),
                         reactor=reactor if reactor is not None else MemoryReactorClock())


def split(data: bytes, sizes: int | Sequence[int]) -> list[bytes]:
    """``data`` cut into pieces of ``sizes`` bytes (repeated to the end); an int = equal pieces."""
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError("chunk sizes must be positive")
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos:pos + size])
        pos += size
        i += 1
    return out


def chunkings(data: bytes, *, random_cuts: int = 20, seed: int = 17) -> Iterator[list[bytes]]:
    """Ways to deliver ``data``: whole, byte by byte, in 2/3/7-byte pieces, and ``random_cuts`` random
    cuttings (reproducible with ``seed``)."""
    yield [data]
    if not data:
        return
    for size in (1, 2, 3, 7):
        yield split(data, size)
    rng = random.Random(seed)
    for _ in range(random_cuts):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8)))) if len(data) > 1 else []
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def run_codec(codec: Any, chunks: bytes | Iterable[bytes], now: datetime = NOW) -> list[Action]:
    """Every action of ``codec.receive`` over the chunks, in order (a ``bytes`` = one read)."""
    if isinstance(chunks, (bytes, bytearray)):
        chunks = [bytes(chunks)]
    actions: list[Action] = []
    for chunk in chunks:
        actions.extend(codec.receive(chunk, now))
    return actions


def actions_in_every_chunking(new_codec: Callable[[], Any], data: bytes, now: datetime = NOW,
                              **how: Any) -> list[Action]:
    """Run a fresh codec over every chunking of ``data``; all must give the same actions, which are
    returned. Raises ``AssertionError`` naming the first chunking that differs."""
    expected: list[Action] | None = None
    for pieces in chunkings(data, **how):
        got = run_codec(new_codec(), pieces, now)
        if expected is None:
            expected = got
        elif got != expected:
            raise AssertionError(f"reads of {[len(p) for p in pieces]} bytes gave {got!r}, whole gave {expected!r}")
    return expected or []


__all__ = ["NOW", "actions_in_every_chunking", "chunkings", "driver_context", "listener_config", "run_codec",
           "split"]
