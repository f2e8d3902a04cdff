"""The ``teltonika`` driver plugin: Codec 8 / 8E / 16 over TCP and UDP, Codec 12/14 commands."""

from __future__ import annotations

from waygps.drivers.base import CodecDriver
from waygps.drivers.teltonika.codec import OPTIONS, datagram_codec, stream_codec

driver = CodecDriver(
    "teltonika",
    "Teltonika FMB/FMC/FMM: Codec 8, 8 Extended and 16 over TCP and UDP; Codec 12/14 commands",
    stream_codec=stream_codec,
    datagram_codec=datagram_codec,
    options=OPTIONS,
)

__all__ = ["driver"]
