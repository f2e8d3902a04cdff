"""``twistd waygps --config FILE``: the WayGPS server as a twistd application."""

from waygps.tap import serviceMaker

__all__ = ["serviceMaker"]
