"""The fakes moved to ``waygps.testing.fakes`` (installed, documented); re-exported for old imports."""

from waygps.testing.fakes import FakeSessions, FakeSink, HeldSink, Sessions

__all__ = ["FakeSessions", "FakeSink", "HeldSink", "Sessions"]
