"""The full codec fuzzing campaign: 1,000,000 generated inputs per built-in driver (default).

Run: .venv/bin/python benchmarks/fuzz_codecs.py [--inputs N] [--seed S] [--driver NAME ...]
                                                [--measure-every K]

Each input (a mutated test vector, a truncation, random bytes, absurd length
fields, a concatenation...; see ``waygps.fuzzing``) goes through a fresh stream
codec in an arbitrary chunking and through a fresh datagram codec. Prints, per
driver: inputs, chunks and bytes fed, actions (stored / rejected / closed),
inputs per second, the largest receive buffer seen after any chunk, the
largest state a codec retained (walked every K-th input), and every failure
(an exception that escaped, a non-action result, state over the bound) with
its seed and index, so it can be replayed. Exit status 1 if anything failed.

The machine's load average is printed: on a shared machine inputs/s is a
floor, not a measurement of the codecs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

from fuzz_support import targets  # noqa: E402

from waygps.fuzzing import Outcome, run  # noqa: E402


def line(o: Outcome) -> str:
    return (f"{o.driver:<10} {o.inputs:>10,} inputs  {o.stream_chunks:>11,} chunks  {o.bytes_fed / 1e6:>8.1f} MB  "
            f"{o.stores:>9,} stored  {o.rejected:>10,} rejected  {o.closes:>8,} closed  "
            f"{o.per_second:>7,.0f} inputs/s  max buffer {o.max_buffered:,} B  max state {o.max_retained:,} B  "
            f"{len(o.failures)} failures  ({o.seconds:,.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--driver", action="append", choices=("gv50", "teltonika", "generic"))
    parser.add_argument("--measure-every", type=int, default=100, metavar="K")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}",
          flush=True)
    failed = False
    for name, target in targets().items():
        if args.driver and name not in args.driver:
            continue
        outcome = run(target, args.inputs, seed=args.seed, measure_every=args.measure_every,
                      progress=lambda o: print("  ... " + line(o), flush=True))
        print(line(outcome), flush=True)
        for failure in outcome.failures:
            print("  FAILURE " + failure, flush=True)
        failed |= bool(outcome.failures)
    print(f"load average at end {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
