"""The fuzzing campaign at CI size: every built-in codec, stream and datagram (a few seconds each).

The full size (1,000,000 inputs per driver) is ``benchmarks/fuzz_codecs.py``;
``WAYGPS_FUZZ_INPUTS`` / ``WAYGPS_FUZZ_SEED`` change the size and seed here.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from fuzz_support import targets
from waygps.actions import Rejected
from waygps.fuzzing import Generator, Target, run

INPUTS = int(os.environ.get("WAYGPS_FUZZ_INPUTS", "2500"))
SEED = int(os.environ.get("WAYGPS_FUZZ_SEED", "2026"))


@pytest.mark.parametrize("driver", ["gv50", "teltonika", "generic"])
def test_no_exception_escapes_and_state_stays_bounded(driver: str) -> None:
    target = targets()[driver]
    outcome = run(target, INPUTS, seed=SEED, measure_every=10)
    print(f"{driver}: {outcome.inputs} inputs, {outcome.stream_chunks} chunks, {outcome.stores} stored, "
          f"{outcome.rejected} rejected, {outcome.closes} closed, max buffer {outcome.max_buffered} B, "
          f"max state {outcome.max_retained} B (seed {SEED})")
    assert outcome.failures == []
    assert outcome.inputs == INPUTS
    # The inputs reached the decoders: some were stored, many refused.
    assert outcome.stores > 0 and outcome.rejected > outcome.stores
    assert outcome.max_buffered <= target.max_retained


def test_generator_is_reproducible_and_varied() -> None:
    target = targets()["gv50"]
    a, b = Generator(target, 5), Generator(target, 5)
    assert [a.one() for _ in range(200)] == [b.one() for _ in range(200)]
    many = Generator(target, 7)
    sample = [many.one() for _ in range(500)]
    assert len(set(sample)) > 400, "mostly distinct inputs"
    assert any(s in target.seeds for s in sample), "valid frames are among them"


class _Leaky:
    """A codec that keeps everything: the campaign must say so."""

    def __init__(self) -> None:
        self.kept = bytearray()

    def receive(self, data: bytes, now: datetime) -> list:
        self.kept += data
        return [Rejected("leak", b"")]

    def receive_datagram(self, data: bytes, now: datetime) -> list:
        raise ValueError("a bug")


def test_the_campaign_reports_a_leak_and_an_escaped_exception() -> None:
    target = Target("leaky", stream=_Leaky, datagram=_Leaky, seeds=[b"x" * 100], max_retained=150)
    outcome = run(target, 200, seed=1, max_failures=1000)
    assert any("retains" in f and "bound 150" in f for f in outcome.failures)
    assert any("datagram" in f and "ValueError: a bug" in f for f in outcome.failures)
