"""What redacting every log event costs: CPU microseconds per event, with and without redaction.

Run: .venv/bin/python benchmarks/bench_redaction.py [--events N]

A typical device log event (a rejected frame with its excerpt) is formatted as
an observer would format it, once as it is and once after
``waygps.redaction.Redactor.event`` (which formats it once and leaves the
observer only the redacted text to insert). Process CPU time, best of 5; the
load average is printed (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import time

from twisted.logger import LogLevel, formatEvent

from waygps.redaction import Redactor


def event() -> dict:
    return {"log_format": "{driver} {imei} {peer}: rejected {reason}: {excerpt}", "driver": "gv50",
            "imei": "862894020180553", "peer": "10.0.0.5:40312", "reason": "bad_field",
            "excerpt": b"+RESP:GTFRI,060228,862894020180553,,,10,1,1,20.0", "log_level": LogLevel.info,
            "log_namespace": "waygps.device", "log_time": time.time()}


def per_event(work, count: int) -> float:
    best = float("inf")
    for _ in range(5):
        events = [event() for _ in range(count)]
        started = time.process_time()
        for e in events:
            work(e)
        best = min(best, (time.process_time() - started) / count)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    redactor = Redactor(["a-configured-token-value", "another-one"])
    plain = per_event(formatEvent, args.events)

    def redacted(e: dict) -> None:
        redactor.event(e)
        formatEvent(e)

    with_redaction = per_event(redacted, args.events)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"format only:               {plain:6.1f} us/event")
    print(f"redact, then format:       {with_redaction:6.1f} us/event  (+{with_redaction - plain:.1f} us)")


if __name__ == "__main__":
    main()
