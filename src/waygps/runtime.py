"""The server process's Python runtime, tuned for many long-lived connections (``[runtime]``).

CPython's cyclic garbage collector runs a young-generation pass every 700
net new container objects, and a full pass scans every tracked object of the
process. A server holding a thousand connections with reports in flight
creates tens of thousands of objects that live for the half second a report
waits for its store batch: with the default threshold most passes find
nothing to free and promote those objects, so full passes come often, and
each one also walks the ~70,000 objects created at start-up (modules,
classes, configuration). Measured with the benchmark suite
(docs/benchmarks.md), the collector took a sixth to a quarter of the server's CPU
per report.

So the server (``twistd waygps``; not library users of ``build_service``)
raises the young threshold (reports complete and are freed before a pass)
and, once started, freezes the start-up objects (``gc.freeze``: full passes
skip them). Reference cycles are still collected; reference counting frees
everything else at once as always.
"""

from __future__ import annotations

import gc

from waygps.config import RuntimeConfig

# Passes of one generation before the next older one is collected (Python's default: 10, 10).
OLDER_PASSES = 20


def tune_collector(config: RuntimeConfig) -> tuple[int, int, int]:
    """Set the collector's thresholds from ``config``; returns the thresholds in force."""
    if config.gc_threshold:
        gc.set_threshold(config.gc_threshold, OLDER_PASSES, OLDER_PASSES)
    return gc.get_threshold()


def freeze_startup(config: RuntimeConfig) -> int:
    """Collect once, then move every object alive now out of the collector's passes; returns how many."""
    if not config.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
