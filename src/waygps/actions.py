"""What a sans-IO codec asks its network adapter to do.

A codec's ``receive(data, now)`` returns a list of these, in order. The adapter
(``waygps.drivers.base``) carries them out: it never interprets protocol bytes
itself. Nothing here imports Twisted.
"""

from __future__ import annotations

from typing import Sequence, Union

from attrs import field, frozen

from waygps.events import DeviceEvent


@frozen
class Send:
    """Write these bytes now (a heartbeat answer, a handshake byte)."""

    data: bytes


@frozen(slots=False)  # one per report: see ``Position`` for why not slotted
class Store:
    """Deliver the events to the sink; write ``ack`` only once they are stored.

    If storing fails, ``nack`` is written instead (``b""`` = write nothing, so
    the device keeps the data and sends it again). Acknowledgements of one
    connection are written in the order of their ``Store`` actions.
    """

    events: Sequence[DeviceEvent] = field(converter=tuple)
    ack: bytes = b""
    nack: bytes = b""


@frozen
class Identified:
    """The device said who it is.

    ``accept`` / ``reject`` are the bytes a handshake protocol answers with
    (Teltonika ``01`` / ``00``); protocols without a handshake leave them empty.
    The adapter decides (allow-list) and writes one of them.
    """

    imei: str
    accept: bytes = b""
    reject: bytes = b""


@frozen
class Rejected:
    """Input that was thrown away: logged with ``excerpt`` and counted by ``reason``.

    ``reply`` is written to the peer when not empty (``ERR ...`` for text protocols).
    ``raw`` is the whole frame when the codec has it (kept in ``FramesRejeitados``;
    the excerpt is kept when it is empty).
    """

    reason: str
    excerpt: bytes = b""
    reply: bytes = b""
    raw: bytes = b""


@frozen
class Flagged:
    """Input that is kept but deserves a log line and ``waygps_frames_flagged{reason}``.

    An IMEI whose Luhn digit fails, a report type without a known layout: the
    data is still stored; the operator sees that something was odd. ``raw`` is the
    whole frame when it is worth keeping for diagnosis (a report decoded by shape).
    """

    reason: str
    excerpt: bytes = b""
    raw: bytes = b""


@frozen
class Close:
    """Close the connection (garbage stream, unsupported mode)."""

    reason: str


Action = Union[Send, Store, Identified, Rejected, Flagged, Close]


def excerpt(data: bytes, limit: int = 48) -> bytes:
    """At most ``limit`` bytes of ``data`` for a log line."""
    return bytes(data[:limit])


__all__ = ["Action", "Close", "Flagged", "Identified", "Rejected", "Send", "Store", "excerpt"]
