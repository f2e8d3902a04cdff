"""Admission rules of the WebSocket feed: failed-handshake rate per address, connection counts.

Plain objects; time is an argument (``now``, in seconds).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable


class HandshakeLimiter:
    """At most ``limit`` failed handshakes per address in a ``window`` (seconds); then refused until it ends.

    Remembers at most ``max_addresses`` addresses (the least recently failing go first), so a scan from
    many addresses cannot grow memory without bound.
    """

    def __init__(self, limit: int, window: float = 60.0, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address -> (window start, count)

    def blocked(self, address: str, now: float) -> bool:
        entry = self._failures.get(address)
        if entry is None:
            return False
        start, count = entry
        if now - start >= self.window:
            del self._failures[address]
            return False
        return count >= self.limit

    def failed(self, address: str, now: float) -> None:
        start, count = self._failures.pop(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._failures[address] = (start, count + 1)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


class ConnectionCounts:
    """Admitted connections, in total and per token (by the token's digest)."""

    def __init__(self, max_total: int, max_per_token: int) -> None:
        self.max_total = max_total
        self.max_per_token = max_per_token
        self.total = 0
        self._per_token: dict[str, int] = {}

    def refusal(self, token: str) -> str | None:
        """``None`` when one more connection with ``token`` is allowed, else the reason it is not."""
        if self.total >= self.max_total:
            return "max_clients"
        if self._per_token.get(token, 0) >= self.max_per_token:
            return "token_limit"
        return None

    def add(self, token: str) -> None:
        self.total += 1
        self._per_token[token] = self._per_token.get(token, 0) + 1

    def remove(self, token: str) -> None:
        self.total -= 1
        left = self._per_token.get(token, 0) - 1
        if left > 0:
            self._per_token[token] = left
        else:
            self._per_token.pop(token, None)

    def tokens(self) -> Iterable[str]:
        return self._per_token.keys()
