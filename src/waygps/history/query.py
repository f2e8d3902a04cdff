"""What a track request asks for, as a MongoDB filter answered by the ``{IMEI, dataDevice}`` index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import frozen

# Forward on the index {IMEI: 1, dataDevice: -1} read backwards: oldest first.
SORT = (("dataDevice", 1),)
HINT = (("IMEI", 1), ("dataDevice", -1))


@frozen
class TrackQuery:
    """Reports of one device with ``start <= dataDevice < end``, oldest first.

    ``valid``: ``True`` only valid fixes, ``False`` only invalid ones, ``None`` all.
    ``limit``: at most this many points (0: no limit).
    """

    imei: str
    start: datetime
    end: datetime
    valid: bool | None = None
    limit: int = 0

    def filter(self) -> dict[str, Any]:
        query: dict[str, Any] = {"IMEI": self.imei, "dataDevice": {"$gte": self.start, "$lt": self.end}}
        if self.valid is not None:
            query["valid"] = self.valid
        return query
