"""Sans-IO Teltonika codecs: TCP stream (handshake + frames) and UDP datagrams. No Twisted here.

Stream rules (docs/drivers/teltonika.md): before the handshake the
buffer starts with a 2-byte IMEI length; after it every frame starts with the
preamble ``00000000`` and a data length that is checked against
``max_packet_bytes`` before anything is buffered. A lone ``FF`` between
frames is the device's keep-alive and is dropped. An AVL packet becomes one
``Store`` whose acknowledgement (the 4-byte record count) the adapter writes
once the packet's events are stored. A frame that fails its CRC, does not
parse, or carries an unknown codec is rejected without an answer (the device
sends it again); ``max_bad_frames`` of them in a row close the connection.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from datetime import datetime
from typing import Any, Mapping

from waygps.actions import Action, Close, Flagged, Identified, Rejected, Store
from waygps.commands.model import Command, UnsupportedCommand
from waygps.drivers.teltonika import commands as cmd
from waygps.drivers.teltonika.avl import AVL_CODECS, AvlError, decode_data
from waygps.drivers.teltonika.crc import crc16
from waygps.drivers.teltonika.framing import HEADER, OVERHEAD, PREAMBLE, imei_well_formed, luhn_ok
from waygps.drivers.teltonika.reports import PROTOCOL, ms_of, records_events
from waygps.events import CommandAck, DeviceEvent, Position
from waygps.framing import BAD_PREAMBLE, FRAME, LengthPrefixedFramer

#: Listener options of the driver, with their defaults (the type is the type the configuration must have).
OPTIONS: Mapping[str, Any] = {
    "max_packet_bytes": 8192,  # largest TCP frame (L + 12) or UDP datagram accepted; devices send <= 1280
    "max_bad_frames": 3,  # consecutive rejected frames that close a TCP connection
    "block_output": 1,  # digital output driven by block / unblock (setdigout)
    "command_codec": 12,  # 12, or 14 (addressed by IMEI, FMB firmware >= 03.25.04)
    "command_timeout": 600.0,  # seconds a command waits for its response before it is no longer matched
}

MAX_IMEI_FRAME = 32  # an IMEI length above this is not a handshake at all
MAX_IN_FLIGHT = 16

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_UDP_HEAD = struct.Struct(">HHBBH")  # length, packet id, not-usable byte, AVL packet id, IMEI length
_UDP_ACK = struct.Struct(">HHBBB")  # length (5), packet id, 01, AVL packet id, records accepted


def hex_excerpt(raw: bytes | bytearray) -> bytes:
    """The first 32 bytes of a binary frame as hex text: what the log line and `waygps decode` show."""
    return bytes(raw[:32]).hex().encode("ascii")


def _option(options: Mapping[str, Any], key: str) -> Any:
    return options.get(key, OPTIONS[key])


class _Commands:
    """Commands written on one connection and not yet answered, oldest first (Codec 12 has no serial)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.block_output = int(_option(options, "block_output"))
        self.codec = int(_option(options, "command_codec"))
        self.timeout_ms = int(float(_option(options, "command_timeout")) * 1000)
        self.in_flight: deque[tuple[str, str, int]] = deque(maxlen=MAX_IN_FLIGHT)

    def encode(self, command: Command, now: datetime) -> bytes:
        text = cmd.command_text(command, self.block_output).encode("ascii")
        if self.codec == 14:
            try:
                data = cmd.encode_codec14(command.imei, text)
            except ValueError as e:
                raise UnsupportedCommand(str(e)) from None
        elif self.codec == 12:
            data = cmd.encode_codec12(text)
        else:
            raise UnsupportedCommand(f"command_codec {self.codec}: only 12 and 14 exist")
        if command.type not in cmd.NO_RESPONSE:
            self.in_flight.append((command.id, command.type, ms_of(now)))
        return data

    def answered(self, now: datetime) -> tuple[str | None, str | None]:
        """The (id, type) of the oldest command still waiting, removed from the queue."""
        limit = ms_of(now) - self.timeout_ms
        while self.in_flight:
            command_id, command_type, sent = self.in_flight.popleft()
            if sent >= limit:
                return command_id, command_type
        return None, None


def _command_events(data: bytes, imei: str, now: datetime, pending: _Commands | None) -> list[DeviceEvent]:
    """Events of a Codec 12/13/14 frame from the device (raises ``CommandFrameError``)."""
    frame = cmd.decode_command_data(data)
    if frame.codec == cmd.CODEC_13:
        attributes: dict[str, Any] = {"codec": "13", "message": frame.text}
        stamp = frame.timestamp
        if stamp is None:
            attributes["time_source"] = "server"
        key = "c13:" + hashlib.blake2b(bytes(data), digest_size=10).hexdigest()  # timestamp and text
        return [
            Position(
                imei=imei,
                protocol=PROTOCOL,
                device_time=stamp or now,
                server_time=now,
                event="codec13",
                key=key,
                valid=False,
                attributes=attributes,
                raw=bytes(data).hex(),
            )
        ]
    if frame.type not in (cmd.TYPE_RESPONSE, cmd.TYPE_NACK):
        raise cmd.CommandFrameError("unexpected_command", f"type 0x{frame.type:02X} from a device")
    if frame.codec == cmd.CODEC_14 and frame.imei != imei:
        raise cmd.CommandFrameError(
            "imei_mismatch", f"Codec 14 answer for {frame.imei}, connection is {imei}"
        )
    command_id, command_type = pending.answered(now) if pending is not None else (None, None)
    text = frame.text
    success = frame.type == cmd.TYPE_RESPONSE
    if success and command_type in ("block", "unblock"):
        # setdigout answers name the outputs ("DOUT1:ON Timeout:INFINITY"); other text is an error
        success = text.upper().startswith("DOUT")
    return [
        CommandAck(
            imei=imei,
            protocol=PROTOCOL,
            server_time=now,
            success=success,
            response=text if text or success else "nACK",
            command_id=command_id,
            command_type=command_type,
        )
    ]


class TeltonikaStreamCodec:
    """One TCP connection's decoder and command encoder."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.max_packet = max(int(_option(options, "max_packet_bytes")), 64)
        self.max_bad = max(int(_option(options, "max_bad_frames")), 1)
        self.commands = _Commands(options)
        self.imei: str | None = None
        # preamble 00000000, data length L (3.. limit), L bytes, CRC: L + 12 bytes; FF = keep-alive
        self._framer = LengthPrefixedFramer(header=HEADER, length_field=1, adjust=OVERHEAD, min_length=3,
                                            max_length=self.max_packet, preamble=PREAMBLE, idle=b"\xff")
        self._bad = 0
        self._closed = False

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        if self._closed:
            return []
        framer = self._framer
        framer.push(data)
        actions: list[Action] = []
        if self.imei is None and not self._handshake(framer, actions):
            return actions
        piece = framer.pop()
        while piece is not None:
            if piece.kind is FRAME:
                self._frame(piece.data, now, actions)
            elif piece.kind is BAD_PREAMBLE:
                self._close(actions, "bad_preamble", piece.data, "stream out of sync")
            else:  # BAD_LENGTH
                self._close(actions, "bad_length", piece.data,
                            f"data length {framer.last_length} (frame limit {self.max_packet} bytes)")
            if self._closed:
                break
            piece = framer.pop()
        return actions

    # --- handshake -------------------------------------------------------------
    def _handshake(self, framer: LengthPrefixedFramer, actions: list[Action]) -> bool:
        """Read the IMEI frame (2-byte length + digits) ahead of the framed part; True once identified."""
        while framer.peek(1) == b"\xff":  # keep-alive, never answered
            framer.skip(1)
        head = framer.peek(2)
        if len(head) < 2:
            return False
        (length,) = _U16.unpack(head)
        if length == 0 or length > MAX_IMEI_FRAME:
            what = "data before the IMEI handshake" if length == 0 else f"IMEI length {length}"
            self._close(actions, "bad_imei", framer.peek(48), f"{what}: not a Teltonika handshake", reply=b"\x00")
            return False
        message = framer.peek(2 + length)
        if len(message) < 2 + length:
            return False
        raw = message[2:]
        if not imei_well_formed(raw):
            self._close(actions, "bad_imei", message, "malformed IMEI", reply=b"\x00")
            return False
        framer.skip(2 + length)
        imei = raw.decode("ascii")
        if not luhn_ok(imei):
            # Counted and logged; accepted all the same (the allow-list decides who may connect).
            actions.append(Flagged("imei_luhn", raw))
        self.imei = imei
        actions.append(Identified(imei, accept=b"\x01", reject=b"\x00"))
        return True

    # --- frames ------------------------------------------------------------------
    def _frame(self, raw: bytes, now: datetime, actions: list[Action]) -> None:
        """One whole frame (header, data, CRC) the framer cut out."""
        size = len(raw)
        data = raw[8:size - 4]
        (crc,) = _U32.unpack_from(raw, size - 4)
        if crc != crc16(data):
            self._bad_frame(actions, "bad_crc", raw)
            return
        codec = data[0]
        imei = self.imei
        assert imei is not None
        try:
            if codec in AVL_CODECS:
                _, records = decode_data(data)
                events = records_events(records, codec, imei, now)
                actions.append(Store(events, ack=_U32.pack(len(records))))
            elif codec in cmd.COMMAND_CODECS:
                actions.append(Store(_command_events(data, imei, now, self.commands)))
            else:
                self._bad_frame(actions, "unknown_codec", raw)
                return
        except (AvlError, cmd.CommandFrameError) as e:
            self._bad_frame(actions, e.reason, raw)
            return
        self._bad = 0

    def _bad_frame(self, actions: list[Action], reason: str, raw: bytes | bytearray) -> None:
        actions.append(Rejected(reason, hex_excerpt(raw), raw=raw))
        self._bad += 1
        if self._bad >= self.max_bad:
            self._closed = True
            self._framer.clear()
            actions.append(Close(f"{self._bad} bad frames in a row"))

    def _close(
        self, actions: list[Action], reason: str, raw: bytes | bytearray, why: str, reply: bytes = b""
    ) -> None:
        actions.append(Rejected(reason, hex_excerpt(raw), reply=reply, raw=raw))
        actions.append(Close(why))
        self._closed = True
        self._framer.clear()

    # --- commands ----------------------------------------------------------------
    def encode_command(self, command: Command, now: datetime) -> bytes:
        return self.commands.encode(command, now)

    def expects_answer(self, command: Command) -> bool:
        return command.type not in cmd.NO_RESPONSE

    def cuts_engine(self, command: Command) -> bool:
        return cmd.cuts_engine(command, self.commands.block_output)


class TeltonikaDatagramCodec:
    """UDP: one datagram = channel header + one AVL packet, answered after store."""

    LUHN_SEEN = 10_000  # IMEIs whose failed check digit was already reported (bounded)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.max_packet = max(int(_option(options, "max_packet_bytes")), 64)
        self._luhn_seen: set[str] = set()

    def receive_datagram(self, data: bytes, now: datetime) -> list[Action]:
        if len(data) > self.max_packet:
            return [Rejected("too_long", hex_excerpt(data), raw=data)]
        if len(data) < _UDP_HEAD.size:
            return [Rejected("truncated", hex_excerpt(data), raw=data)]
        length, packet_id, _unused, avl_id, imei_length = _UDP_HEAD.unpack_from(data, 0)
        if length != len(data) - 2:
            return [Rejected("bad_length", hex_excerpt(data), raw=data)]
        raw_imei = bytes(data[8 : 8 + imei_length])
        if not imei_well_formed(raw_imei):
            return [Rejected("bad_imei", hex_excerpt(data), raw=data)]
        imei = raw_imei.decode("ascii")
        actions: list[Action] = []
        if not luhn_ok(imei) and imei not in self._luhn_seen:
            # Once per device, not once per datagram (a UDP device has no connection to report it on).
            if len(self._luhn_seen) >= self.LUHN_SEEN:
                self._luhn_seen.clear()
            self._luhn_seen.add(imei)
            actions.append(Flagged("imei_luhn", raw_imei))
        body = bytes(data[8 + imei_length :])
        if body and body[0] not in AVL_CODECS:
            return actions + [Rejected("unknown_codec", hex_excerpt(data), raw=data)]
        try:
            _, records = decode_data(body)
        except AvlError as e:
            return actions + [Rejected(e.reason, hex_excerpt(data), raw=data)]
        events = records_events(records, body[0], imei, now)
        ack = _UDP_ACK.pack(5, packet_id, 0x01, avl_id, len(records))
        actions.append(Identified(imei))
        actions.append(Store(events, ack=ack))
        return actions

    def encode_command(self, command: Command, now: datetime) -> bytes:
        raise UnsupportedCommand("teltonika: commands over UDP are not supported (use a TCP listener)")


def stream_codec(listener: Any) -> TeltonikaStreamCodec:
    return TeltonikaStreamCodec(getattr(listener, "options", None))


def datagram_codec(listener: Any) -> TeltonikaDatagramCodec:
    return TeltonikaDatagramCodec(getattr(listener, "options", None))


__all__ = ["OPTIONS", "TeltonikaDatagramCodec", "TeltonikaStreamCodec", "datagram_codec", "stream_codec"]
