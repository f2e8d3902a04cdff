"""The codec fuzzing campaign: generated inputs through every built-in codec (no Twisted, no I/O).

Used by ``tests/fuzz`` (a few seconds each, in CI) and ``benchmarks/fuzz_codecs.py``
(the full campaign, 1,000,000+ inputs per driver). An *input* is one generated
byte string; it goes through a fresh stream codec in an arbitrary chunking
and through a fresh datagram codec as one datagram. The inputs are:

* mutations of valid frames (the drivers' test vectors): bit flips, byte
  insertions, deletions and repeats, splices of two frames, absurd values
  written over length and count fields (0, 1, 0x7F…, 0xFF…, off by one),
  huge or negative numbers in text fields, an absurd ``Content-Length``;
* truncations (a prefix, a suffix, a middle cut);
* random bytes (any length up to 2 KiB), and random printable text;
* concatenations of several of these (valid frames between garbage).

For every input: no exception may escape the codec, every result is a list of
``waygps.actions`` actions, and the bytes the codec retains (its buffers and
every other piece of state, measured by walking its attributes) stay under the
driver's bound. The generator is seeded, so a failure is reproducible from
``(driver, seed, index)``.
"""

from __future__ import annotations

import random
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from attrs import define, field

from waygps import actions as action_types

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
ACTION_CLASSES = tuple(getattr(action_types, name) for name in
                       ("Close", "Flagged", "Identified", "Rejected", "Send", "Store"))
EXTREMES = (b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff",
            b"\x00\x00", b"\xff\xff", b"\x7f\xff", b"\x80\x00",
            b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00",
            b"\x00\x00\x10\x00", b"\x00\x01\x00\x00")
TEXT_NUMBERS = (b"99999999999999999999999999", b"-1", b"-0", b"1e999", b"nan", b"inf", b"0x1F", b"", b"FFFF",
                b"20991231235959", b"00000000000000", b"19700101000000", b"-999.9", b"1" * 300)


@define
class Target:
    """One driver's codecs, seeds and memory bound."""

    name: str
    stream: Callable[[], Any]
    datagram: Callable[[], Any]
    seeds: Sequence[bytes]
    stream_prefix: Sequence[bytes] = ()  # a handshake that puts a stream codec past identification
    max_retained: int = 65536
    buffered: Callable[[Any], int] | None = None  # the stream codec's receive buffer, read after every chunk


@define
class Outcome:
    driver: str
    inputs: int = 0
    stream_chunks: int = 0
    bytes_fed: int = 0
    actions: int = 0
    stores: int = 0
    rejected: int = 0
    closes: int = 0
    max_retained: int = 0
    max_buffered: int = 0
    seconds: float = 0.0
    failures: list[str] = field(factory=list)

    @property
    def per_second(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0


# --- measuring what a codec holds -------------------------------------------------------


def retained(obj: Any, depth: int = 5, seen: set[int] | None = None) -> int:
    """Bytes of text and binary data ``obj`` holds (its attributes, containers, nested objects),
    plus one per container item: a measure that grows with any unbounded state."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return 0
    seen.add(id(obj))
    if isinstance(obj, (bytes, bytearray, memoryview, str)):
        return len(obj)
    if obj is None or isinstance(obj, (bool, int, float, datetime, type)) or callable(obj) and not hasattr(obj, "__dict__"):
        return 0
    if isinstance(obj, dict):
        return len(obj) + sum(retained(k, depth - 1, seen) + retained(v, depth - 1, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ in ("deque", "OrderedDict"):
        return len(obj) + sum(retained(v, depth - 1, seen) for v in obj)
    total = 0
    if hasattr(obj, "__dict__"):
        total += sum(retained(v, depth - 1, seen) for v in vars(obj).values())
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot != "__dict__" and hasattr(obj, slot):
                total += retained(getattr(obj, slot), depth - 1, seen)
    return total


# --- generating inputs ----------------------------------------------------------------------


class Generator:
    """Seeded inputs for one target."""

    def __init__(self, target: Target, seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.seeds = [bytes(s) for s in target.seeds if s]

    def seed(self) -> bytes:
        return self.rng.choice(self.seeds)

    def random_bytes(self) -> bytes:
        n = self.rng.choice((0, 1, 2, 7, 8, 12, 17, 64, 300, self.rng.randrange(2048)))
        return self.rng.randbytes(n)

    def random_text(self) -> bytes:
        alphabet = b"+RESP:GTFRI,$0123456789ABCDEF.-\r\n=&?{}\"id lat lon GET / HTTP/1.1 \x00"
        return bytes(self.rng.choice(alphabet) for _ in range(self.rng.randrange(400)))

    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.choice((1, 1, 1, 2, 3, 5, 8))):
            kind = rng.randrange(11)
            if not buf:
                buf += rng.randbytes(rng.randrange(1, 16))
                continue
            at = rng.randrange(len(buf))
            if kind == 0:  # bit flip
                buf[at] ^= 1 << rng.randrange(8)
            elif kind == 1:  # random byte
                buf[at] = rng.randrange(256)
            elif kind == 2:  # insert
                buf[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16, 100)))
            elif kind == 3:  # delete
                del buf[at:at + rng.choice((1, 2, 4, 16, 100))]
            elif kind == 4:  # repeat a slice
                end = min(len(buf), at + rng.randrange(1, 64))
                buf[at:at] = buf[at:end] * rng.choice((2, 3, 50))
            elif kind == 5:  # absurd binary value over a field (lengths, counts)
                value = rng.choice(EXTREMES)
                buf[at:at + len(value)] = value
            elif kind == 6:  # length field of a TCP frame (Teltonika: bytes 4-8), off by one or absurd
                if len(buf) >= 8:
                    current = int.from_bytes(buf[4:8], "big")
                    choice = rng.choice((min(current + 1, 0xFFFFFFFF), max(current - 1, 0), 0, 0xFFFFFFFF, 0x7FFFFFFF, 65536))
                    buf[4:8] = choice.to_bytes(4, "big")
            elif kind == 7:  # a text field replaced by an absurd number
                fields = bytes(buf).split(b",")
                if len(fields) > 1:
                    fields[rng.randrange(len(fields))] = rng.choice(TEXT_NUMBERS)
                    buf = bytearray(b",".join(fields))
            elif kind == 8:  # splice with another seed
                other = self.seed()
                cut = rng.randrange(len(other) + 1)
                buf = buf[:at] + other[cut:]
            elif kind == 9:  # separators: many commas, a stray terminator
                buf[at:at] = rng.choice((b",,,,,,,,,,,,,,,,", b"$", b"\n", b"\r\n\r\n", b"\x00", b"%", b";", b"&"))
            else:  # HTTP header absurdity
                buf[at:at] = rng.choice((b"\r\nContent-Length: 99999999999999\r\n", b"\r\nContent-Length: -5\r\n",
                                         b"\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n",
                                         b"\r\nContent-Length: 10\r\n\r\n"))
        return bytes(buf)

    def truncate(self, data: bytes) -> bytes:
        if len(data) < 2:
            return data
        rng = self.rng
        a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
        return rng.choice((data[:a], data[a:], data[:a] + data[b:]))

    def large(self) -> bytes:
        """A long input (20-100 KB): a frame repeated without its end, garbage, a huge HTTP body."""
        rng = self.rng
        size = rng.randrange(20_000, 100_000)
        kind = rng.randrange(3)
        if kind == 0:
            seed = self.seed().rstrip(b"$\r\n") or b"x"
            return (seed * (size // len(seed) + 1))[:size]
        if kind == 1:
            return rng.randbytes(size)
        return b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size + b"a" * size

    def one(self) -> bytes:
        """One input."""
        roll = self.rng.random()
        if roll < 0.0005:
            return self.large()
        if roll < 0.10:
            return self.seed()
        if roll < 0.55:
            return self.mutate(self.seed())
        if roll < 0.70:
            return self.truncate(self.seed())
        if roll < 0.80:
            return self.random_bytes()
        if roll < 0.85:
            return self.random_text()
        parts = [self.rng.choice((self.seed, self.random_bytes, lambda: self.mutate(self.seed())))()
                 for _ in range(self.rng.randrange(2, 6))]
        return b"".join(parts)

    def chunks(self, data: bytes) -> list[bytes]:
        """An arbitrary chunking: whole, byte by byte, or random cuts."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.3 or len(data) < 2:
            return [data]
        if roll < 0.4 and len(data) <= 512:
            return [data[i:i + 1] for i in range(len(data))]
        cuts = sorted(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 8)))
        return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)]) if b > a]


# --- running ------------------------------------------------------------------------------


def _check(result: Any, outcome: Outcome) -> str | None:
    if not isinstance(result, list):
        return f"returned {type(result).__name__}, not a list of actions"
    for action in result:
        if not isinstance(action, ACTION_CLASSES):
            return f"returned a {type(action).__name__}, not an action"
        name = type(action).__name__
        if name == "Store":
            outcome.stores += 1
        elif name == "Rejected":
            outcome.rejected += 1
        elif name == "Close":
            outcome.closes += 1
    outcome.actions += len(result)
    return None


def run(target: Target, inputs: int, seed: int = 1, measure_every: int = 1,
        progress: Callable[[Outcome], None] | None = None, max_failures: int = 20) -> Outcome:
    """Feed ``inputs`` generated inputs through ``target``'s codecs; collect what went wrong.

    ``measure_every``: measure the retained state after every chunk of every n-th input (the
    walk costs more than a decode).
    """
    generator = Generator(target, seed)
    outcome = Outcome(target.name)
    started = time.perf_counter()
    for index in range(inputs):
        data = generator.one()
        measure = index % measure_every == 0
        stream = target.stream()
        pieces = generator.chunks(data)
        if target.stream_prefix and generator.rng.random() < 0.7:
            pieces.insert(0, generator.rng.choice(target.stream_prefix))
        for piece in pieces:
            try:
                result = stream.receive(piece, NOW)
            except Exception:
                outcome.failures.append(f"{target.name} stream seed={seed} index={index} input={data[:200]!r}: "
                                        f"{traceback.format_exc(limit=3)}")
                break
            problem = _check(result, outcome)
            if problem:
                outcome.failures.append(f"{target.name} stream seed={seed} index={index}: {problem}")
                break
            outcome.stream_chunks += 1
            outcome.bytes_fed += len(piece)
            if target.buffered is not None:
                size = target.buffered(stream)
                if size > outcome.max_buffered:
                    outcome.max_buffered = size
            if measure:
                held = retained(stream)
                if held > outcome.max_retained:
                    outcome.max_retained = held
                if held > target.max_retained:
                    outcome.failures.append(f"{target.name} stream seed={seed} index={index}: retains {held} "
                                            f"bytes (bound {target.max_retained})")
                    break
        finish = getattr(stream, "finish", None) or getattr(stream, "flush", None)
        if finish is not None:
            try:
                _check(finish(NOW), outcome)
            except Exception:
                outcome.failures.append(f"{target.name} finish seed={seed} index={index} input={data[:200]!r}: "
                                        f"{traceback.format_exc(limit=3)}")
        datagram = target.datagram()
        try:
            problem = _check(datagram.receive_datagram(data, NOW), outcome)
        except Exception:
            problem = f"raised: {traceback.format_exc(limit=3)}"
        if problem:
            outcome.failures.append(f"{target.name} datagram seed={seed} index={index} input={data[:200]!r}: {problem}")
        outcome.inputs += 1
        if len(outcome.failures) >= max_failures:
            break
        if progress is not None and index and index % 100_000 == 0:
            outcome.seconds = time.perf_counter() - started
            progress(outcome)
    outcome.seconds = time.perf_counter() - started
    return outcome


# --- the built-in drivers --------------------------------------------------------------------

GENERIC_SEEDS = (
    b"id=862894020180553,lat=-17.72,lon=-62.89,speed=20.5,time=1780000000\n",
    b"imei=p1;lat=1;lon=2;timestamp=2026-06-01T11:59:00Z;ignition=on;bearing=90\n",
    b'{"id": "phone-1", "lat": -34.6, "lon": -58.4, "timestamp": 1780000000, "speed": 10}\n',
    b'{"device": "a", "location": {"latitude": 1.5, "longitude": 2.5}, "fixTime": "2026-06-01T11:59:00Z"}\n',
    b"p7,$GPRMC,115900,A,1732.2600,S,06253.6000,W,010.5,090.0,010626,,,A*6C\n",
    b"GET /?id=phone1&lat=-34.6&lon=-58.4&timestamp=1780000000&speed=10 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n"
    b'{"id": "p", "lat": 1, "lon": 2}',
    b"POST /?id=f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\n"
    b"lat=1&lon=2&x=3",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1F\r\n{\"id\": \"p\", \"lat\": 1, \"lon\": 2}\r\n0\r\n\r\n",
)


def builtin_targets(gv50_frames: Iterable[bytes], teltonika_vectors: Iterable[bytes]) -> dict[str, Target]:
    """The three built-in drivers, seeded with their test vectors."""
    from waygps.drivers.generic.codec import GenericDatagramCodec, GenericStreamCodec, Settings
    from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
    from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
    from waygps.drivers.teltonika.framing import imei_frame

    teltonika = [bytes(v) for v in teltonika_vectors]
    handshakes = [v for v in teltonika if v[:2] == b"\x00\x0f"] or [imei_frame("356307042441013")]
    generic = Settings.from_listener({})
    return {
        "gv50": Target("gv50", stream=lambda: Gv50StreamCodec(), datagram=lambda: Gv50DatagramCodec(),
                       seeds=list(gv50_frames), max_retained=2 * 4096 + 4096,
                       buffered=lambda c: c.splitter.buffered),
        "teltonika": Target("teltonika", stream=lambda: TeltonikaStreamCodec(),
                            datagram=lambda: TeltonikaDatagramCodec(), seeds=teltonika,
                            stream_prefix=handshakes, max_retained=2 * 8192 + 4096,
                            buffered=lambda c: c.buffered),
        "generic": Target("generic", stream=lambda: GenericStreamCodec(generic),
                          datagram=lambda: GenericDatagramCodec(generic), seeds=list(GENERIC_SEEDS),
                          max_retained=2 * 65536 + 8192 + 4096, buffered=_generic_buffered),
    }


def _generic_buffered(codec: Any) -> int:
    reader = getattr(codec, "_reader", None)
    held = codec.buffered  # the line framer's unconsumed bytes
    if reader is not None:
        held += len(reader._buffer) + len(reader._body) + len(reader.trailing)
    return held
