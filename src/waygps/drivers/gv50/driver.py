"""The ``gv50`` driver: Queclink GV50 and the @Track ASCII family over TCP and UDP.

Everything protocol-specific lives in the sans-IO codec (``codec.py``); this
module only names it for the plugin system.
"""

from __future__ import annotations

from waygps.drivers.base import CodecDriver
from waygps.drivers.gv50.codec import datagram_codec, stream_codec

NAME = "gv50"

OPTIONS = {
    "max_frame_bytes": 4096,  # a frame (or garbage run) longer than this is dropped / closes the connection
    "password": "gv50",  # device password used in AT+GT commands (a command may carry its own)
    "heartbeat_minutes": 5,  # heartbeat interval written by set_server (AT+GTSRI), 0 or 5-360
}

driver = CodecDriver(
    NAME,
    "Queclink GV50 / @Track ASCII (GV55, GV300, GL300, GV500...): TCP long connection and UDP",
    stream_codec=stream_codec,
    datagram_codec=datagram_codec,
    options=OPTIONS,
)
