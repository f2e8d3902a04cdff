"""Dropping this module into twisted/plugins/ is all it takes for WayGPS to find the driver."""

from waygps.drivers.base import CodecDriver
from waygps_example_driver.codec import SemicolonCodec

example = CodecDriver(
    "example",
    "Example third-party driver: IMEI;lat;lon;speed lines",
    stream_codec=lambda listener: SemicolonCodec(),
)
