"""The "wbin" driver's plugin module (no ``__init__.py`` beside it)."""

from waygps.drivers.base import CodecDriver
from waygps_binary_example import codec, protocol

wbin = CodecDriver(
    "wbin",
    "Example binary driver: WB frames (length-prefixed, CRC-16, acknowledged once stored)",
    stream_codec=codec.stream_codec,
    options={"max_frame_bytes": protocol.MAX_FRAME},
)
