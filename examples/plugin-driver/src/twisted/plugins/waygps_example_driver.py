"""Dropping this module into twisted/plugins/ is all it takes for WayGPS to find the driver.

No ``__init__.py`` beside it: ``twisted.plugins`` belongs to Twisted.
"""

from waygps.drivers.base import CodecDriver
from waygps_example_driver import codec

example = CodecDriver(
    "example",
    "Example third-party driver: IMEI;lat;lon;speed lines",
    stream_codec=codec.stream_codec,
    datagram_codec=codec.datagram_codec,
    options=codec.OPTIONS,
)
