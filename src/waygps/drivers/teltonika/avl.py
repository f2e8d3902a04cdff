"""AVL data of Codec 8 (0x08), Codec 8 Extended (0x8E) and Codec 16 (0x10): bytes <-> records.

The *data field* is what a TCP packet's length counts and its CRC covers:
codec ID, Number of Data 1, the records, Number of Data 2 (the UDP datagram
carries the same bytes after its header). Layouts: docs/drivers/teltonika.md (Protocol notes).

Records are ``NamedTuple``s rather than attrs classes: a packet of 25 records
with 20 IO elements each is decoded on the hot path, and tuples are several
times cheaper to build. IO values stay raw (unsigned, as sent) in their size
groups; naming and scaling is :mod:`.reports`' job.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Sequence

CODEC_8 = 0x08
CODEC_8E = 0x8E
CODEC_16 = 0x10
AVL_CODECS = frozenset({CODEC_8, CODEC_8E, CODEC_16})
CODEC_NAMES = {CODEC_8: "8", CODEC_8E: "8E", CODEC_16: "16"}

SIZES = (1, 2, 4, 8)


class AvlError(ValueError):
    """The data field does not parse; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class AvlRecord(NamedTuple):
    timestamp: int  # ms since the Unix epoch, UTC
    priority: int
    longitude: int  # degrees x 1e7, signed
    latitude: int  # degrees x 1e7, signed
    altitude: int  # metres, signed
    angle: int
    satellites: int
    speed: int  # km/h
    event_id: int
    #: (ids and values of the 1-, 2-, 4- and 8-byte groups, flat: id, value, id, value...)
    groups: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    nx: tuple[tuple[int, bytes], ...] = ()  # Codec 8E variable-length elements
    generation: int | None = None  # Codec 16 generation type
    declared_total: int | None = None  # N as sent, when it is not what the groups add up to
    raw: bytes = b""  # the record's bytes as received

    @property
    def total(self) -> int:
        return sum(len(g) for g in self.groups) // 2 + len(self.nx)

    @property
    def io(self) -> dict[int, int | bytes]:
        """All elements as ``{id: raw value}`` (for tests and tools, not the hot path)."""
        out: dict[int, int | bytes] = {}
        for flat in self.groups:
            out.update(zip(flat[0::2], flat[1::2]))
        out.update(self.nx)
        return out


# --- layouts ---------------------------------------------------------------

# head: timestamp, priority, lon, lat, alt, angle, satellites, speed, then the IO head
_HEAD = {
    CODEC_8: struct.Struct(">QBiihHBHBB"),  # event 1, N 1
    CODEC_8E: struct.Struct(">QBiihHBHHH"),  # event 2, N 2
    CODEC_16: struct.Struct(">QBiihHBHHBB"),  # event 2, generation 1, N 1
}
_COUNT = {CODEC_8: struct.Struct(">B"), CODEC_8E: struct.Struct(">H"), CODEC_16: struct.Struct(">B")}
_ID_FORMAT = {CODEC_8: "B", CODEC_8E: "H", CODEC_16: "H"}
_VALUE_FORMAT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_NX_HEAD = struct.Struct(">HH")
_U16 = struct.Struct(">H")

_group_structs: dict[int, dict[int, struct.Struct]] = {codec: {} for codec in AVL_CODECS}


def _group(codec: int, size: int, count: int) -> struct.Struct:
    """The struct of ``count`` (id, value) pairs; cached per codec under ``count << 4 | size``."""
    cache = _group_structs[codec]
    layout = cache.get(count << 4 | size)
    if layout is None:
        layout = struct.Struct(">" + (_ID_FORMAT[codec] + _VALUE_FORMAT[size]) * count)
        if len(cache) < 4096:
            cache[count << 4 | size] = layout
    return layout


# --- decoding --------------------------------------------------------------


def decode_data(data: bytes) -> tuple[int, list[AvlRecord]]:
    """Decode a whole data field (codec .. Number of Data 2): ``(codec, records)``.

    Raises :class:`AvlError` unless the field parses exactly: a known codec,
    N1 = N2 >= 1, every record complete, nothing left over.
    """
    if len(data) < 3:
        raise AvlError("truncated", f"data field of {len(data)} bytes")
    codec = data[0]
    if codec not in AVL_CODECS:
        raise AvlError("unknown_codec", f"codec 0x{codec:02X}")
    count = data[1]
    if count == 0:
        raise AvlError("malformed", "no records (Number of Data 1 is 0)")
    if data[-1] != count:
        raise AvlError("malformed", f"Number of Data 1 = {count}, Number of Data 2 = {data[-1]}")
    records, end = decode_records(codec, data, 2, count, len(data) - 1)
    if end != len(data) - 1:
        raise AvlError("malformed", f"{len(data) - 1 - end} bytes left after {count} records")
    return codec, records


def decode_records(
    codec: int, data: bytes, offset: int, count: int, limit: int
) -> tuple[list[AvlRecord], int]:
    """``count`` records of ``codec`` from ``data[offset:limit]``: (records, offset after the last)."""
    head = _HEAD[codec]
    head_size = head.size
    counter = _COUNT[codec]
    counter_size = counter.size
    unpack_count = counter.unpack_from
    unpack_head = head.unpack_from
    id_size = 1 if codec == CODEC_8 else 2
    is16 = codec == CODEC_16
    is8e = codec == CODEC_8E
    structs = _group_structs[codec]
    records = []
    for _ in range(count):
        start = offset
        found = 0
        if offset + head_size > limit:
            raise AvlError("truncated", f"record {len(records) + 1} head")
        fields = unpack_head(data, offset)
        offset += head_size
        groups = []
        for size in SIZES:
            if offset + counter_size > limit:
                raise AvlError("truncated", f"record {len(records) + 1}: {size}-byte group count")
            (n,) = unpack_count(data, offset)
            offset += counter_size
            if n:
                if offset + n * (id_size + size) > limit:
                    raise AvlError("truncated", f"record {len(records) + 1}: {n} elements of {size} bytes")
                layout = structs.get(n << 4 | size) or _group(codec, size, n)
                groups.append(layout.unpack_from(data, offset))
                offset += layout.size
                found += n
            else:
                groups.append(())
        nx: tuple[tuple[int, bytes], ...] = ()
        if is8e:
            if offset + 2 > limit:
                raise AvlError("truncated", f"record {len(records) + 1}: NX count")
            (n,) = _U16.unpack_from(data, offset)
            offset += 2
            if n:
                items = []
                for _ in range(n):
                    if offset + 4 > limit:
                        raise AvlError("truncated", f"record {len(records) + 1}: NX element head")
                    io_id, length = _NX_HEAD.unpack_from(data, offset)
                    offset += 4
                    if offset + length > limit:
                        raise AvlError(
                            "truncated", f"record {len(records) + 1}: NX element {io_id} of {length} bytes"
                        )
                    items.append((io_id, bytes(data[offset : offset + length])))
                    offset += length
                nx = tuple(items)
                found += n
        if is16:
            ts, pr, lon, lat, alt, ang, sat, spd, event, generation, total = fields
        else:
            ts, pr, lon, lat, alt, ang, sat, spd, event, total = fields
            generation = None
        records.append(
            AvlRecord(
                ts,
                pr,
                lon,
                lat,
                alt,
                ang,
                sat,
                spd,
                event,
                tuple(groups),  # type: ignore[arg-type]
                nx,
                generation,
                None if total == found else total,
                bytes(data[start:offset]),
            )
        )
    return records, offset


# --- encoding (device side: tests, benchmarks, simulators) --------------------


def encode_record(codec: int, record: AvlRecord) -> bytes:
    if codec not in AVL_CODECS:
        raise ValueError(f"not an AVL codec: 0x{codec:02X}")
    total = record.total if record.declared_total is None else record.declared_total
    if codec == CODEC_16:
        head = _HEAD[codec].pack(
            record.timestamp,
            record.priority,
            record.longitude,
            record.latitude,
            record.altitude,
            record.angle,
            record.satellites,
            record.speed,
            record.event_id,
            record.generation or 0,
            total,
        )
    else:
        head = _HEAD[codec].pack(
            record.timestamp,
            record.priority,
            record.longitude,
            record.latitude,
            record.altitude,
            record.angle,
            record.satellites,
            record.speed,
            record.event_id,
            total,
        )
    if record.nx and codec != CODEC_8E:
        raise ValueError("NX elements exist in Codec 8 Extended only")
    parts = [head]
    counter = _COUNT[codec]
    for size, flat in zip(SIZES, record.groups):
        n = len(flat) // 2
        parts.append(counter.pack(n))
        if n:
            parts.append(_group(codec, size, n).pack(*flat))
    if codec == CODEC_8E:
        parts.append(_U16.pack(len(record.nx)))
        for io_id, value in record.nx:
            parts.append(_NX_HEAD.pack(io_id, len(value)))
            parts.append(value)
    return b"".join(parts)


def encode_data(codec: int, records: Sequence[AvlRecord]) -> bytes:
    """The data field (codec .. Number of Data 2) for ``records`` (1..255 of them)."""
    if not 1 <= len(records) <= 255:
        raise ValueError(f"a packet holds 1 to 255 records, not {len(records)}")
    body = b"".join(encode_record(codec, r) for r in records)
    return bytes((codec, len(records))) + body + bytes((len(records),))


def make_record(
    timestamp: int,
    *,
    priority: int = 0,
    longitude: int = 0,
    latitude: int = 0,
    altitude: int = 0,
    angle: int = 0,
    satellites: int = 0,
    speed: int = 0,
    event_id: int = 0,
    io: dict[int, dict[int, int]] | None = None,
    nx: Sequence[tuple[int, bytes]] = (),
    generation: int | None = None,
) -> AvlRecord:
    """A record from ``io = {size: {id: value}}`` (sizes 1, 2, 4, 8)."""
    io = io or {}
    groups = tuple(tuple(x for pair in io.get(size, {}).items() for x in pair) for size in SIZES)
    return AvlRecord(
        timestamp,
        priority,
        longitude,
        latitude,
        altitude,
        angle,
        satellites,
        speed,
        event_id,
        groups,
        tuple(nx),
        generation,
    )  # type: ignore[arg-type]


__all__ = [
    "AVL_CODECS",
    "AvlError",
    "AvlRecord",
    "CODEC_16",
    "CODEC_8",
    "CODEC_8E",
    "CODEC_NAMES",
    "decode_data",
    "decode_records",
    "encode_data",
    "encode_record",
    "make_record",
]
