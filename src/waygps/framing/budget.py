"""A garbage budget: a connection that sends only bytes no frame can be made of is closed.

The codec spends the size of every ``NOISE`` / ``OVERSIZE`` piece (and of a
frame that did not decode) and resets the budget on every frame that did.
"""

from __future__ import annotations

from waygps.actions import Close


class GarbageBudget:
    """``spend`` returns a ``Close`` once ``limit`` bytes of garbage came without a good frame."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int = 4096) -> None:
        if limit < 1:
            raise ValueError(f"garbage budget: expected at least 1 byte, got {limit}")
        self.limit = limit
        self.spent = 0

    def spend(self, size: int) -> Close | None:
        self.spent += size
        if self.spent >= self.limit:
            return Close(f"{self.spent} bytes of garbage without a valid frame")
        return None

    def reset(self) -> None:
        self.spent = 0


__all__ = ["GarbageBudget"]
