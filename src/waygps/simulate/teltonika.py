"""A simulated Teltonika FMB device: IMEI handshake, Codec 8 Extended AVL packets, Codec 12 answers.

TCP: the device sends its IMEI, waits for ``01``, then sends one AVL packet at
a time and waits for the 4-byte record count before the next; records made
meanwhile go into the next packet (up to :data:`MAX_RECORDS`). A packet not
answered within the timeout is sent again byte for byte, on the same link or
after a reconnect (after the handshake). A single ``FF`` byte is the
keep-alive of an idle link. A Codec 12 command is answered with a Codec 12
response (type 06): ``setdigout`` switches output 1 and answers ``DOUT1:ON
Timeout:INFINITY`` (or ``OFF``), other commands get a short text,
``cpureset`` none.

UDP: one datagram per packet (length, packet ID, ``01``, AVL packet ID, IMEI,
data without CRC); the 7-byte answer echoes the AVL packet ID and the count.

Frames are built with the driver's own encoders (``avl.encode_data``,
``framing.frame``, ``commands.encode_codec12``).
"""

from __future__ import annotations

import struct

from waygps.drivers.teltonika.avl import CODEC_8E, encode_data, make_record
from waygps.drivers.teltonika.commands import CODEC_12, TYPE_COMMAND, TYPE_RESPONSE, encode_codec12
from waygps.drivers.teltonika.crc import crc16
from waygps.drivers.teltonika.framing import frame, imei_frame
from waygps.simulate.device import DeviceModel, Pending
from waygps.simulate.track import Fix

MAX_RECORDS = 50
KEEPALIVE = b"\xff"
EVENT_IGNITION = 239
_U32 = struct.Struct(">I")
_UDP_HEAD = struct.Struct(">HHBBH")  # length, packet id, 01, AVL packet id, IMEI length


class TeltonikaDevice(DeviceModel):
    protocol = "teltonika"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = b""
        self.accepted = False  # the server answered 01 to the IMEI
        self.waiting: list = []  # records made, not yet in a packet
        self.in_flight: Pending | None = None
        self.packet_id = self.rng.randrange(0x10000)
        self.avl_id = self.rng.randrange(0x100)
        self.last_ms = 0

    # --- the link ----------------------------------------------------------------------------
    def connected(self, now: float) -> list[bytes]:
        self.online = True
        self.buffer = b""
        if self.settings.udp:
            self.accepted = True
            return self.resend_all(now)
        self.accepted = False
        self.last_sent = now
        return [imei_frame(self.imei)]

    def disconnected(self, now: float) -> None:
        super().disconnected(now)
        self.accepted = False

    # --- reports -------------------------------------------------------------------------------
    def _record(self, fix: Fix, now: float) -> object:
        stamp = max(int(fix.time * 1000), self.last_ms + 1)
        self.last_ms = stamp
        event = EVENT_IGNITION if fix.event is not None else 0
        io = {1: {239: int(fix.ignition), 240: int(fix.moving), 21: 4, 179: int(self.output), 69: 1},
              2: {66: 12000 + self.rng.randrange(800), 24: int(fix.speed), 182: 9},
              4: {16: int(fix.odometer_km * 1000)}}
        return make_record(stamp, priority=1 if event else 0, longitude=round(fix.longitude * 1e7),
                           latitude=round(fix.latitude * 1e7), altitude=int(fix.altitude), angle=int(fix.heading),
                           satellites=9, speed=int(fix.speed), event_id=event, io=io)

    def report(self, now: float) -> list[bytes]:
        self.waiting.append(self._record(self.track.advance(now), now))
        return self._send_next(now)

    def _send_next(self, now: float) -> list[bytes]:
        if self.in_flight is not None or not self.waiting or not self.accepted or not self.online:
            return []
        records, self.waiting = self.waiting[:MAX_RECORDS], self.waiting[MAX_RECORDS:]
        data = encode_data(CODEC_8E, records)
        if self.settings.udp:
            self.avl_id = (self.avl_id + 1) & 0xFF
            self.packet_id = (self.packet_id + 1) & 0xFFFF
            body = _UDP_HEAD.pack(0, self.packet_id, 1, self.avl_id, 15)[2:] + self.imei.encode() + data
            packet = struct.pack(">H", len(body)) + body
            key: object = self.avl_id
        else:
            packet = frame(data)
            key = "tcp"
        self.in_flight = Pending(key, packet, now, len(records))
        self.pending[key] = self.in_flight
        self.stats.sent += len(records)
        self.reports_made += len(records)
        self.last_sent = now
        return [packet]

    def resend_all(self, now: float) -> list[bytes]:
        if not self.accepted:
            return []
        return super().resend_all(now) or self._send_next(now)

    def expired(self, now: float) -> list[bytes]:
        if not self.accepted:
            return []
        return super().expired(now)

    def heartbeat(self, now: float) -> list[bytes]:
        if self.settings.udp or not self.accepted:
            return []
        self.stats.heartbeats += 1
        self.last_sent = now
        return [KEEPALIVE]

    # --- what the server sends ---------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[bytes]:
        if self.settings.udp:
            return self._datagram_answer(data, now)
        self.buffer += data
        out: list[bytes] = []
        if not self.accepted and self.buffer:
            answer, self.buffer = self.buffer[0], self.buffer[1:]
            if answer != 1:
                self.stats.rejected += 1  # refused: the runner closes the link and tries later
                return out
            self.accepted = True
            out.extend(self.resend_all(now))
        while len(self.buffer) >= 4:
            if self.buffer[:4] == b"\x00\x00\x00\x00" and len(self.buffer) >= 9 and self.buffer[8] == CODEC_12:
                size = _U32.unpack_from(self.buffer, 4)[0]
                if len(self.buffer) < size + 12:
                    break
                packet, self.buffer = self.buffer[:size + 12], self.buffer[size + 12:]
                out.extend(self._command_answer(packet, now))
                continue
            if self.buffer[:4] == b"\x00\x00\x00\x00" and len(self.buffer) < 9:
                break  # a Codec 12 frame's start, or a zero count: wait for the next bytes
            count, self.buffer = _U32.unpack_from(self.buffer)[0], self.buffer[4:]
            out.extend(self._count(count, now))
        return out

    def _count(self, count: int, now: float) -> list[bytes]:
        pending = self.in_flight
        if pending is None or count != pending.records:
            # A smaller count means "not stored": the packet goes again after the timeout.
            self.stats.rejected += 1 if pending is not None else 0
            self.stats.unexpected += 1 if pending is None else 0
            return []
        self.in_flight = None
        self._acknowledged(pending.key, now)
        return self._send_next(now)

    def _datagram_answer(self, data: bytes, now: float) -> list[bytes]:
        if len(data) != 7 or data[:2] != b"\x00\x05":
            self.stats.unexpected += 1
            return []
        avl_id, count = data[5], data[6]
        pending = self.in_flight
        if pending is None or pending.key != avl_id:
            self.stats.unexpected += 1
            return []
        if count != pending.records:
            self.stats.rejected += 1
            return []
        self.in_flight = None
        self._acknowledged(avl_id, now)
        return self._send_next(now)

    def _command_answer(self, packet: bytes, now: float) -> list[bytes]:
        data = packet[8:-4]
        if _U32.unpack_from(packet, len(packet) - 4)[0] != crc16(data) or len(data) < 8 or data[2] != TYPE_COMMAND:
            self.stats.unexpected += 1
            return []
        text = data[7:-1].decode("ascii", "replace")
        self._command(text)
        words = text.split()
        if words and words[0] == "cpureset":
            return []
        if words and words[0] in ("setdigout", "setigndigout") and len(words) > 1 and words[1][:1] in "01":
            self.output = words[1][0] == "1"
            answer = f"DOUT1:{'ON' if self.output else 'OFF'} Timeout:INFINITY"
        elif words and words[0] == "getver":
            answer = "Ver:03.29.00_04 GPS:AXN_5.1_2 Hw:FMB920 Mod:13 IMEI:" + self.imei
        else:
            answer = f"{text}: OK"
        self.stats.command_answers += 1
        self.last_sent = now
        return [encode_codec12(answer.encode(), TYPE_RESPONSE)]
