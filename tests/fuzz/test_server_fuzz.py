"""A shorter fuzzing campaign through a running server, over TCP and UDP, for every built-in driver.

Generated inputs (``waygps.fuzzing``) go to real listener sockets: each TCP
input on its own connection in its chunks, each UDP input as one datagram.
Afterwards the server still stores and acknowledges a valid report on every
listener, and no codec ever raised (``waygps_frames_rejected{reason="codec_error"}``
stays where it was). ``WAYGPS_FUZZ_SERVER_INPUTS`` sets the inputs per listener.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

import pytest_twisted
from fuzz_support import targets
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.task import deferLater

from waygps import metrics
from waygps.drivers.teltonika.avl import encode_data, make_record
from waygps.drivers.teltonika.framing import frame, imei_frame
from waygps.fuzzing import Generator

INPUTS = int(os.environ.get("WAYGPS_FUZZ_SERVER_INPUTS", "150"))
WAIT_LIMIT = 30.0
DRIVERS = ("gv50", "teltonika", "generic")


class Device(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


class UdpDevice(DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, address: Any) -> None:
        self.received.append(data)


@inlineCallbacks
def until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        yield deferLater(reactor, 0.05, lambda: None)


def codec_errors() -> float:
    return sum(metrics.FRAMES_REJECTED.labels(d, "codec_error")._value.get() for d in DRIVERS)


def valid_report(driver: str, transport: str, speed: int) -> tuple[bytes, bytes, str]:
    """(bytes to send, the acknowledgement expected, the IMEI stored): a report fixed now."""
    now = time.gmtime()
    if driver == "gv50":
        imei = "862894020180553"
        fix = time.strftime("%Y%m%d%H%M%S", now)
        count = f"{speed:04X}"
        report = (f"+RESP:GTFRI,060228,{imei},,,10,1,1,{speed}.0,147,329.7,-62.899703,-17.720434,{fix},0736,0003,"
                  f"6AAE,3381,00,913.3,,,,0,220101,,,,{fix},{count}$").encode()
        return report, f"+SACK:{count}$".encode(), imei
    if driver == "teltonika":
        imei = "356307042441013"
        record = make_record(int(time.time() * 1000), longitude=-628997030, latitude=-177204340, satellites=9,
                             speed=speed)
        data = encode_data(0x08, [record])
        if transport == "tcp":
            return imei_frame(imei) + frame(data), b"\x00\x00\x00\x01", imei
        body = struct.pack(">HBBH", 0xCAFE, 0x01, 0x05, len(imei)) + imei.encode() + data
        return struct.pack(">H", len(body)) + body, bytes.fromhex("0005CAFE010501"), imei
    imei = f"fuzz-check-{transport}"
    return f"id={imei},lat=-17.72,lon=-62.89,speed={speed},time={int(time.time()) - 5}\n".encode(), b"OK 1\n", imei


@pytest_twisted.inlineCallbacks
def test_server_survives_a_fuzzing_campaign_and_still_stores_and_acknowledges(start_server: Any) -> None:
    listeners = [{"driver": d, "transport": t} for d in DRIVERS for t in ("tcp", "udp")]
    server = yield start_server(listeners=listeners)
    before = codec_errors()
    all_targets = targets()
    udp = UdpDevice()
    udp_port = reactor.listenUDP(0, udp, interface="127.0.0.1")
    sent = 0
    try:
        for index, listener in enumerate(listeners):
            generator = Generator(all_targets[listener["driver"]], seed=100 + index)
            port = server.port(index)
            for _ in range(INPUTS):
                data = generator.one()
                if listener["transport"] == "udp":
                    udp.transport.write(data[:65000], ("127.0.0.1", port))
                    sent += 1
                    if sent % 25 == 0:
                        yield deferLater(reactor, 0.01, lambda: None)  # let the server read its socket
                    continue
                device = Device()
                yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), device)
                for piece in generator.chunks(data):
                    if device.closed.called:
                        break
                    device.transport.write(piece)
                device.transport.loseConnection()
                yield device.closed
                sent += 1
        # Afterwards: a valid report on every listener is stored, then acknowledged.
        positions = server.sync_db()["DadosVeiculo"]
        for index, listener in enumerate(listeners):
            speed = 61 + index
            report, ack, imei = valid_report(listener["driver"], listener["transport"], speed)
            if listener["transport"] == "tcp":
                device = Device()
                yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(index)), device)
                device.transport.write(report)
                yield until(lambda device=device, ack=ack: ack in device.received, f"{listener} acknowledgement")
                device.transport.loseConnection()
                yield device.closed
            else:
                udp.received.clear()
                udp.transport.write(report, ("127.0.0.1", server.port(index)))
                yield until(lambda ack=ack: ack in udp.received, f"{listener} acknowledgement")
            doc = positions.find_one({"IMEI": imei, "speed": float(speed)})
            assert doc is not None, f"{listener}: acknowledged but not stored"
    finally:
        yield udp_port.stopListening()
    assert codec_errors() == before, "a codec raised during the campaign"
    print(f"{sent} fuzz inputs through {len(listeners)} listeners; every listener still stores and acknowledges")
