"""The GV50 sans-IO codecs: bytes in, ``waygps.actions`` out (no Twisted, no clock).

``Gv50StreamCodec`` serves one TCP connection; ``Gv50DatagramCodec`` serves a
UDP listener (one datagram = one message, stateless but for the commands it
sent). Both answer reports with ``+SACK:<count>$`` only through
``Store(ack=...)``, i.e. once the events are stored; a heartbeat is answered at
once.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from datetime import datetime
from typing import Any


from waygps.actions import Action, Close, Flagged, Identified, Rejected, Send, Store
from waygps.commands.model import Command
from waygps.drivers.gv50 import framing
from waygps.drivers.gv50.framing import FRAME, TEXT
from waygps.drivers.gv50.commands import ACK_TYPES, RTO_TYPES, Settings, cuts_engine, encode
from waygps.drivers.gv50.fastpath import fast_gtfri
from waygps.drivers.gv50.parse import ACK, Frame, FrameError, is_hex, luhn_ok, parse_frame
from waygps.drivers.gv50.reports import Report, decode_report
from waygps.drivers.gv50.shape import next_block
from waygps.events import Alarm, CommandAck, Heartbeat, Position

PROTOCOL = "gv50"
EXCERPT = framing.EXCERPT
_REMEMBERED = 256  # commands whose serial is kept to match their acknowledgement


@functools.lru_cache(maxsize=64)
def _shared_settings(password: str, heartbeat_minutes: int, sack: bool) -> Settings:
    """One ``Settings`` for every connection of a listener, not one each (memory per connection)."""
    return Settings(password=password, heartbeat_minutes=heartbeat_minutes, sack=sack)


class _Core:
    """Frame -> actions, shared by the stream and the datagram codec.

    A stream codec is held per connected device: its attributes are slots.
    """

    __slots__ = ("ack", "max_frame", "protocol", "settings", "_sent")

    def __init__(self, *, ack: bool = True, max_frame: int = 4096, password: str = "gv50",
                 heartbeat_minutes: int = 5, protocol: str = PROTOCOL) -> None:
        self.ack = ack
        self.max_frame = max_frame
        self.protocol = protocol
        self.settings = _shared_settings(password, heartbeat_minutes, ack)
        # Made on the first command: most connections never get one (memory per connection).
        self._sent: OrderedDict[tuple[str, str], tuple[str, str]] | None = None

    # --- commands ------------------------------------------------------------
    def encode_command(self, command: Command, now: datetime) -> bytes:
        data, serial = encode(command, self.settings)
        key = (command.imei, serial.upper())
        if self._sent is None:
            self._sent = OrderedDict()
        self._sent[key] = (command.id, command.type)
        self._sent.move_to_end(key)
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return data

    def cuts_engine(self, command: Command) -> bool:
        return cuts_engine(command)

    # --- frames --------------------------------------------------------------
    def _parse(self, raw: bytes, actions: list[Action], text: str | None = None,
               fields: list[str] | None = None) -> Frame | None:
        try:
            frame = parse_frame(raw.decode("ascii", "replace") if text is None else text, fields)
        except FrameError as e:
            actions.append(Rejected(e.reason, _excerpt(e, raw), raw=raw))
            return None
        if frame.flags and "bad_count" in frame.flags and next_block(frame.fields, 4, len(frame.fields) - 2) is None:
            # No count and no position block: nothing in it is worth an identity or a record.
            actions.append(Rejected("bad_count", (frame.fields[-1][:16] + " | ").encode() + raw[:EXCERPT], raw=raw))
            return None
        return frame

    def _frame_actions(self, frame: Frame, raw: bytes, now: datetime, imei: str, luhn_bad: bool,
                       actions: list[Action]) -> None:
        if frame.kind == ACK:
            self._ack_frame(frame, raw, now, imei, actions)
            return
        try:
            report = decode_report(frame)
        except FrameError as e:
            actions.append(Rejected(e.reason, _excerpt(e, raw), raw=raw))
            return
        sack = b"+SACK:" + frame.count.encode() + b"$" if self.ack and frame.count else b""
        for why in report.invalid:
            actions.append(Rejected("invalid_position", (why + " | ").encode() + raw[:EXCERPT], raw=raw))
        if frame.flags and "bad_count" in frame.flags and not report.blocks:
            # No count and no position: nothing to keep but the evidence.
            actions.append(Rejected("bad_count", (frame.fields[-1][:16] + " | ").encode() + raw[:EXCERPT],
                                    raw=raw))
            return
        if not report.known:
            actions.append(Flagged("unknown_report_type", raw[:EXCERPT], raw=raw))
            actions.append(Store([Heartbeat(imei=imei, protocol=self.protocol, server_time=now)], ack=sack))
            return
        for flag in report.flags:
            actions.append(Flagged(flag, raw[:EXCERPT], raw=raw))
        events: list[Any] = self._positions(frame, report, now, imei, luhn_bad)
        if report.alarm is not None:
            name, message = report.alarm
            if frame.buffered:
                message += " (buffered report)"
            events.append(Alarm(imei=imei, protocol=self.protocol, server_time=now, alarm=name,
                                message=message, position_id=events[-1].document_id if events else None))
        if not events or not isinstance(events[0], Position):
            # Every block was out of range: nothing for DadosVeiculo, but the device was seen (X5).
            events.insert(0, Heartbeat(imei=imei, protocol=self.protocol, server_time=now))
        actions.append(Store(events, ack=sack))

    def _ack_frame(self, frame: Frame, raw: bytes, now: datetime, imei: str, actions: list[Action]) -> None:
        fields = frame.fields
        if frame.type == "GTHBD":
            # Answered at once, whatever the listener's ack setting: the device needs it to stay.
            actions.append(Send(b"+SACK:GTHBD," + frame.version.encode() + b"," + frame.count.encode() + b"$"))
            actions.append(Store([Heartbeat(imei=imei, protocol=self.protocol, server_time=now)]))
            return
        serial = fields[-3] if len(fields) >= 7 else ""
        if len(serial) != 4 or not is_hex(serial):
            actions.append(Rejected("bad_ack", raw[:EXCERPT]))
            return
        sent = self._sent.pop((imei, serial.upper()), None) if self._sent else None
        if sent is not None:
            command_id, command_type = sent
        else:
            command_id = None
            word = frame.type
            if word == "GTRTO":
                command_type = RTO_TYPES.get(fields[4].upper()) if len(fields) >= 8 else None
            else:
                command_type = ACK_TYPES.get(word)
        ack_event = CommandAck(imei=imei, protocol=self.protocol, server_time=now, success=True,
                               response=frame.text, serial=serial, command_type=command_type,
                               command_id=command_id)
        actions.append(Store([ack_event], ack=b"+SACK:" + frame.count.encode() + b"$" if self.ack else b""))

    def _positions(self, frame: Frame, report: Report, now: datetime, imei: str, luhn_bad: bool) -> list[Any]:
        protocol = self.protocol
        kind = frame.type
        prefix = f"{kind},{frame.send_time},{frame.count},"
        buffered = frame.buffered
        text = frame.text
        common = report.common
        if luhn_bad:
            common["imei_luhn_valid"] = False
        if report.flags:
            common["frame_flags"] = list(report.flags)
        blocks = report.blocks
        out: list[Any] = []
        if not blocks:
            if report.invalid:
                return out
            # A report type without a position block (GTPNA, GTINF...): an event without coordinates.
            attributes = dict(common)
            attributes.update(report.tail)
            attributes["time_source"] = "server"
            out.append(Position(imei=imei, protocol=protocol, device_time=now, server_time=now, event=kind,
                                key=prefix + "0,", valid=False, ignition=_either(report), buffered=buffered,
                                attributes=attributes, raw=text))
            return out
        last = len(blocks) - 1
        ignition = report.ignition
        for (index, accuracy, speed, course, altitude, longitude, latitude, when, when_raw, cell, satellites,
             trigger, mileage) in blocks:
            attributes = common.copy()
            if index == blocks[last][0]:
                attributes.update(report.tail)
                ignition = _either(report)
            if accuracy is not None:
                attributes["gps_accuracy"] = accuracy
            if cell:
                attributes.update(cell)
            if trigger is not None:
                attributes["gnss_trigger"] = trigger
            if mileage is not None:
                attributes.setdefault("mileage_km", mileage)
            if when is None:
                when = now
                attributes["time_source"] = "server"
                valid = False
            else:
                valid = accuracy != 0  # 0: the fix failed, these are the last known coordinates
            out.append(Position(
                imei=imei, protocol=protocol, device_time=when, server_time=now, event=kind,
                key=f"{prefix}{index},{when_raw}", valid=valid, latitude=latitude, longitude=longitude,
                altitude=altitude, speed=speed, course=course, satellites=satellites,
                hdop=float(accuracy) if accuracy else None, ignition=ignition, buffered=buffered,
                attributes=attributes, raw=text,
            ))
        return out


def _either(report: Report) -> bool | None:
    return report.tail_ignition if report.tail_ignition is not None else report.ignition


def _excerpt(error: FrameError, raw: bytes) -> bytes:
    return (error.detail.encode("ascii", "replace") + b" | " if error.detail else b"") + raw[:EXCERPT]


class Gv50StreamCodec(_Core):
    """One TCP connection: framing, identity, garbage accounting."""

    __slots__ = ("use_fast_path", "splitter", "imei", "_luhn_bad", "_garbage", "closed")

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.use_fast_path = True  # tests turn it off to compare the shortcut with the general path
        self.splitter = framing.Splitter(self.max_frame)
        self.imei: str | None = None
        self._luhn_bad = False
        self._garbage = 0  # bytes of garbage (noise, unknown headers) since the last frame that decoded
        self.closed = False

    def receive(self, data: bytes, now: datetime) -> list[Action]:
        if self.closed:
            return []
        if self.imei is not None and self.use_fast_path and not self._luhn_bad:
            # The usual read of an identified device: one whole GTFRI. Served without the splitter's
            # lists and tuples; anything else (or a frame the shortcut declines) takes the full path.
            text = self.splitter.one_frame(data)
            if text is not None:
                store = fast_gtfri(text.split(","), text, self.imei, now, self.ack, self.protocol)
                if store is not None:
                    self._garbage = 0
                    return [store]
        return self._pieces(self.splitter.feed(data), now)

    def finish(self, now: datetime) -> list[Action]:
        """The capture ended (``waygps decode``): a last frame without terminator is decoded as
        it is, so log captures without ``$`` decode and a truncated one is reported."""
        if self.closed:
            return []
        return self._pieces(self.splitter.flush(), now)

    def _pieces(self, pieces: list[tuple[str, Any, int]], now: datetime) -> list[Action]:
        actions: list[Action] = []
        # The GTFRI shortcut (fastpath.py) serves identified devices; the general path decides the rest.
        fast = self.imei if self.use_fast_path and not self._luhn_bad else None
        ack, protocol = self.ack, self.protocol
        for kind, chunk, size in pieces:
            if kind is TEXT or kind is FRAME:
                text = chunk if kind is TEXT else chunk.decode("ascii", "replace")
                fields = text.split(",")
                if fast is not None and len(fields) > 22:
                    store = fast_gtfri(fields, text, fast, now, ack, protocol)
                    if store is not None:
                        self._garbage = 0
                        actions.append(store)
                        continue
                if kind is TEXT:
                    chunk = text.encode("ascii", "replace")  # for log excerpts (U+FFFD becomes "?")
                self._frame(chunk, size, text, fields, now, actions)
            elif kind == framing.NOISE:
                self._garbage += size
                if chunk:
                    actions.append(Rejected("noise", chunk))
            elif kind == framing.OVERSIZE:
                if self.imei is None:  # an identified device's overlong frame is dropped, not held against it
                    self._garbage += size
                if chunk:
                    actions.append(Rejected("frame_too_long", chunk))
            elif kind == framing.UNTERMINATED:
                actions.append(Rejected("unterminated", chunk))
            else:  # BINARY
                actions.append(Rejected("hex_mode", chunk))
                actions.append(Close("device sends the binary HEX format; configure it for ASCII"))
                self.closed = True
                return actions
        if self._garbage >= self.max_frame:
            actions.append(Close(f"{self._garbage} bytes of garbage without a valid frame"))
            self.closed = True
        return actions

    def _frame(self, raw: bytes, size: int, text: str, fields: list[str], now: datetime,
               actions: list[Action]) -> None:
        frame = self._parse(raw, actions, text, fields)
        if frame is None:
            last = actions[-1]
            if isinstance(last, Rejected) and last.reason == "bad_header":
                self._garbage += size
            return
        imei = frame.unique_id
        if self.imei is None:
            self.imei = imei
            actions.append(Identified(imei))
            if not luhn_ok(imei):
                self._luhn_bad = True
                actions.append(Flagged("imei_luhn", imei.encode()))
        elif imei != self.imei:
            actions.append(Rejected("imei_mismatch", raw[:EXCERPT]))
            return
        self._garbage = 0
        self._frame_actions(frame, raw, now, imei, self._luhn_bad, actions)


class Gv50DatagramCodec(_Core):
    """A UDP listener: each datagram is decoded on its own; replies go to its sender."""

    __slots__ = ("_luhn_seen",)

    _LUHN_SEEN = 10000

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._luhn_seen: set[str] = set()

    def receive_datagram(self, data: bytes, now: datetime) -> list[Action]:
        actions: list[Action] = []
        splitter = framing.Splitter(self.max_frame)
        pieces = splitter.feed(data)
        pieces.extend(splitter.flush())
        imei: str | None = None
        for kind, chunk, _ in pieces:
            if kind is FRAME or kind is TEXT:
                if kind is TEXT:
                    text, chunk = chunk, chunk.encode("ascii", "replace")
                else:
                    text = chunk.decode("ascii", "replace")
                frame = self._parse(chunk, actions, text)
                if frame is None:
                    continue
                if imei is None:
                    imei = frame.unique_id
                    actions.append(Identified(imei))
                elif frame.unique_id != imei:
                    actions.append(Rejected("imei_mismatch", chunk[:EXCERPT]))
                    continue
                luhn_bad = not luhn_ok(imei)
                if luhn_bad and imei not in self._luhn_seen:
                    if len(self._luhn_seen) >= self._LUHN_SEEN:
                        self._luhn_seen.clear()
                    self._luhn_seen.add(imei)
                    actions.append(Flagged("imei_luhn", imei.encode()))
                self._frame_actions(frame, chunk, now, imei, luhn_bad, actions)
            elif kind == framing.BINARY:
                actions.append(Rejected("hex_mode", chunk))
                break
            elif chunk:
                reason = {framing.NOISE: "noise", framing.OVERSIZE: "frame_too_long"}.get(kind, "unterminated")
                actions.append(Rejected(reason, chunk))
        return actions


def stream_codec(listener: Any) -> Gv50StreamCodec:
    return Gv50StreamCodec(**_settings(listener))


def datagram_codec(listener: Any) -> Gv50DatagramCodec:
    return Gv50DatagramCodec(**_settings(listener))


def _settings(listener: Any) -> dict[str, Any]:
    """Codec settings from a ``ListenerConfig`` (its ``ack`` and the driver's options)."""
    return {
        "ack": bool(listener.ack),
        "max_frame": int(listener.option("max_frame_bytes", 4096)),
        "password": str(listener.option("password", "gv50")),
        "heartbeat_minutes": int(listener.option("heartbeat_minutes", 5)),
    }
