"""Every vector TV-01 .. TV-21 of teltonika-protocol.md §7 decodes (or encodes) to its listed values."""

from __future__ import annotations

from typing import Any

import pytest

from teltonika_vectors import IMEI, NOW, tv, utc
from waygps.actions import Identified, Store
from waygps.commands.model import Command
from waygps.drivers.teltonika.avl import decode_data
from waygps.drivers.teltonika.codec import TeltonikaDatagramCodec, TeltonikaStreamCodec
from waygps.drivers.teltonika.commands import CODEC_14, decode_command_data, encode_codec12, encode_codec14
from waygps.drivers.teltonika.framing import luhn_ok
from waygps.events import CommandAck, Position


def row(
    time: str,
    pr: int,
    lon: float,
    lat: float,
    alt: int,
    ang: int,
    sat: int,
    spd: int,
    event: int,
    io: dict[int, Any],
    generation: int | None = None,
) -> dict[str, Any]:
    return dict(
        time=utc(time),
        pr=pr,
        lon=lon,
        lat=lat,
        alt=alt,
        ang=ang,
        sat=sat,
        spd=spd,
        event=event,
        io=io,
        generation=generation,
    )


NX_548_TV17 = bytes.fromhex(
    "010f0001c60106babbf36300550202806d0f0001ca01063456555565690202806b0f0001d10106467975425450020280690b0001"
    "c90106fa54ba8d00550b0001cf0106cabbf3630055"
)

# (vector, codec, expected records, acknowledgement); TCP vectors follow the TV-01 handshake
TCP_AVL = [
    (
        "TV-02",
        0x08,
        [
            row(
                "2019-06-10T10:04:46.000Z",
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                {21: 3, 1: 1, 66: 24079, 241: 24602, 78: 0},
            )
        ],
        "00000001",
    ),
    (
        "TV-03",
        0x08,
        [row("2019-06-10T10:05:36.000Z", 1, 0, 0, 0, 0, 0, 0, 1, {21: 3, 1: 1, 66: 24080})],
        "00000001",
    ),
    (
        "TV-04",
        0x08,
        [
            row("2019-06-10T10:01:01.000Z", 1, 0, 0, 0, 0, 0, 0, 1, {1: 0}),
            row("2019-06-10T10:01:19.000Z", 1, 0, 0, 0, 0, 0, 0, 1, {1: 1}),
        ],
        "00000002",
    ),
    (
        "TV-05",
        0x8E,
        [
            row(
                "2019-06-10T11:36:32.000Z",
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                {1: 1, 17: 29, 16: 22949000, 11: 893700218, 14: 500686954},
            )
        ],
        "00000001",
    ),
    (
        "TV-06",
        0x10,
        [
            row("2019-07-10T12:06:54.000Z", 0, 0, 0, 0, 0, 0, 0, 11, {1: 0, 3: 0, 11: 39, 66: 22074}, 5),
            row("2019-07-10T12:06:55.000Z", 0, 0, 0, 0, 0, 0, 0, 11, {1: 0, 3: 0, 11: 38, 66: 22074}, 5),
        ],
        "00000002",
    ),
    (
        "TV-15",
        0x08,
        [
            row(
                "2019-01-04T12:27:19.000Z",
                0,
                16.3745183,
                48.1523066,
                190,
                198,
                15,
                83,
                0,
                {
                    240: 1,
                    21: 3,
                    200: 0,
                    1: 1,
                    29: 0,
                    252: 0,
                    66: 14233,
                    24: 83,
                    205: 63501,
                    206: 17007,
                    67: 3976,
                    25: 3000,
                    86: 3000,
                    241: 23201,
                    16: 2656224,
                },
            )
        ],
        "00000001",
    ),
    (
        "TV-16",
        0x8E,
        [
            row(
                "2021-04-08T10:52:26.000Z",
                0,
                6.7877833,
                52.0296716,
                33,
                225,
                19,
                19,
                0,
                {
                    239: 1,
                    240: 1,
                    21: 3,
                    200: 0,
                    69: 1,
                    30: 7,
                    66: 14304,
                    24: 10,
                    206: 5730,
                    67: 3991,
                    36: 1439,
                    241: 26201,
                    199: 30,
                    16: 41397,
                    256: b"WV1ZZZ2EZ86015388",
                    281: b"P0299,P0675,P0674,P0672,P0671,P0471,P2BAC",
                },
            )
        ],
        "00000001",
    ),
    (
        "TV-17",
        0x8E,
        [row("2024-06-03T04:11:04.011Z", 1, 153.080315, -27.4388733, 9, 319, 14, 0, 548, {548: NX_548_TV17})],
        "00000001",
    ),
    (
        "TV-18",
        0x8E,
        [row("2023-10-12T12:29:59.011Z", 0, -6.76889, 62.0355866, 0, 0, 0, 0, 548, {548: None})],
        "00000001",
    ),
    (
        "TV-19",
        0x08,
        [
            row(
                "2013-08-31T15:00:41.710Z",
                0,
                21.432776,
                37.6743392,
                -4,
                0,
                9,
                0,
                0,
                {1: 0, 240: 0, 66: 12835, 24: 0},
            )
        ],
        "00000001",
    ),
]

UDP_AVL = [
    (
        "TV-12",
        0x08,
        "352093086403655",
        [row("2019-06-13T06:23:26.000Z", 1, 0, 0, 0, 0, 0, 0, 1, {21: 3, 1: 1, 66: 23996})],
        "0005CAFE010501",
    ),
    (
        "TV-13",
        0x8E,
        "352093086403655",
        [
            row(
                "2019-06-13T06:25:21.000Z",
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                {1: 1, 17: 157, 16: 22949000, 11: 893700218, 14: 500686954},
            )
        ],
        "0005CAFE010701",
    ),
    (
        "TV-14",
        0x08,
        "357454072713975",
        [
            row(
                "2017-07-12T15:24:41.000Z",
                0,
                0.4124566,
                51.630115,
                99,
                109,
                9,
                49,
                0,
                {1: 0, 2: 0, 240: 1, 200: 0, 66: 14364, 24: 50, 199: 225},
            )
        ],
        "0005CAFE012201",
    ),
]


def check_records(data: bytes, codec: int, expected: list[dict[str, Any]]) -> None:
    got_codec, records = decode_data(data)
    assert got_codec == codec
    assert len(records) == len(expected)
    for record, want in zip(records, expected):
        assert record.timestamp == int(want["time"].timestamp() * 1000)
        assert (
            record.priority,
            record.longitude / 1e7,
            record.latitude / 1e7,
            record.altitude,
            record.angle,
            record.satellites,
            record.speed,
            record.event_id,
        ) == pytest.approx(
            (
                want["pr"],
                want["lon"],
                want["lat"],
                want["alt"],
                want["ang"],
                want["sat"],
                want["spd"],
                want["event"],
            )
        )
        io = record.io
        assert set(io) == set(want["io"])
        for key, value in want["io"].items():
            if value is not None:
                assert io[key] == value, key
        assert record.generation == want["generation"]
        assert record.declared_total is None


def check_positions(events: list[Any], imei: str, expected: list[dict[str, Any]]) -> None:
    positions = [e for e in events if isinstance(e, Position)]
    assert len(positions) == len(expected)
    for position, want in zip(positions, expected):
        assert position.imei == imei and position.protocol == "teltonika"
        assert position.device_time == want["time"]
        assert position.server_time == NOW
        assert position.event == str(want["event"])
        assert position.latitude == want["lat"] and position.longitude == want["lon"]
        assert position.altitude == want["alt"] and position.course == want["ang"]
        assert position.satellites == want["sat"] and position.speed == want["spd"]
        assert position.valid is (want["sat"] > 0)
        assert position.attributes["priority"] == want["pr"]
        assert "time_source" not in position.attributes


@pytest.mark.parametrize("name,codec,expected,ack", TCP_AVL, ids=[v[0] for v in TCP_AVL])
def test_tcp_avl_vector(name: str, codec: int, expected: list[dict[str, Any]], ack: str) -> None:
    frame = tv(name)
    check_records(frame[8:-4], codec, expected)
    codec_ = TeltonikaStreamCodec()
    actions = codec_.receive(tv("TV-01") + frame, NOW)
    assert actions[0] == Identified(IMEI, accept=b"\x01", reject=b"\x00")
    assert len(actions) == 2 and isinstance(actions[1], Store)
    assert actions[1].ack == bytes.fromhex(ack)
    check_positions(list(actions[1].events), IMEI, expected)
    assert codec_.buffered == 0


@pytest.mark.parametrize("name,codec,imei,expected,ack", UDP_AVL, ids=[v[0] for v in UDP_AVL])
def test_udp_avl_vector(name: str, codec: int, imei: str, expected: list[dict[str, Any]], ack: str) -> None:
    datagram = tv(name)
    check_records(datagram[8 + 15 :], codec, expected)
    actions = TeltonikaDatagramCodec().receive_datagram(datagram, NOW)
    assert actions[0] == Identified(imei)
    assert len(actions) == 2 and isinstance(actions[1], Store)
    assert actions[1].ack == bytes.fromhex(ack)
    check_positions(list(actions[1].events), imei, expected)


def test_tv01_handshake_and_luhn() -> None:
    actions = TeltonikaStreamCodec().receive(tv("TV-01"), NOW)
    assert actions == [Identified("356307042441013", accept=b"\x01", reject=b"\x00")]
    assert luhn_ok("356307042441013") and luhn_ok("352093086403655") and luhn_ok("357454072713975")


def test_tv02_named_attributes() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-02"), NOW)[1:]
    (position,) = store.events
    assert position.attributes == {
        "gsm_signal": 3,
        "din1": True,
        "power": 24.079,
        "gsm_operator": 24602,
        "ibutton": "0000000000000000",
        "priority": 1,
        "codec": "8",
    }
    assert position.ignition is None and position.hdop is None
    assert position.key == "1560161086000:1:1"
    assert position.raw == tv("TV-02")[10:-5].hex()


def test_tv06_codec16_generation_and_family_specific_id() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-06"), NOW)[1:]
    first, second = store.events
    assert first.attributes["generation_type"] == 5 and first.attributes["codec"] == "16"
    # ID 11 arrives as a 2-byte value here: not the FMB 8-byte ICCID, so it is kept raw
    assert first.attributes["io11"] == 39 and "iccid1" not in first.attributes
    assert first.attributes["power"] == 22.074 and first.attributes["din1"] is False
    assert first.key != second.key and first.key.endswith(":5")


def test_tv15_fix_and_scaled_values() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-15"), NOW)[1:]
    (position,) = store.events
    a = position.attributes
    assert position.valid is True
    assert (a["movement"], a["power"], a["batteryVoltage"], a["gnss_speed"], a["odometer"], a["gsm_operator"]) == (
        True,
        14.233,
        3.976,
        83,
        2656224,
        23201,
    )
    assert (a["gsm_cell_id"], a["gsm_area_code"], a["unplug"], a["ble_temp1"]) == (63501, 17007, 0, 30.0)
    assert a["io29"] == 0 and a["io86"] == 3000


def test_tv16_nx_strings_and_ignition() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-16"), NOW)[1:]
    (position,) = store.events
    assert position.attributes["vin"] == "WV1ZZZ2EZ86015388"
    assert position.attributes["dtc"] == "P0299,P0675,P0674,P0672,P0671,P0471,P2BAC"
    assert position.ignition is True and position.attributes["ignition"] is True
    assert position.attributes["gnss_status"] == 1 and position.attributes["obd_dtc_count"] == 7


def test_tv17_negative_latitude_and_nx_blob_as_hex() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-17"), NOW)[1:]
    (position,) = store.events
    assert position.latitude == -27.4388733 and position.event == "548"
    assert position.attributes["ble_beacons"] == NX_548_TV17.hex()
    assert position.device_time == utc("2024-06-03T04:11:04.011Z")


def test_tv18_no_fix_is_stored_invalid() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-18"), NOW)[1:]
    (position,) = store.events
    assert position.valid is False and position.satellites == 0
    assert position.longitude == -6.76889 and position.latitude == 62.0355866
    assert len(bytes.fromhex(position.attributes["ble_beacons"])) == 69


def test_tv19_negative_altitude() -> None:
    (store,) = TeltonikaStreamCodec().receive(tv("TV-01") + tv("TV-19"), NOW)[1:]
    assert store.events[0].altitude == -4.0


@pytest.mark.parametrize(
    "name,text",
    [("TV-07", b"getinfo"), ("TV-09", b"setdigout 1"), ("TV-10", b"setdigout 0"), ("TV-11", b"setdigout 11")],
)
def test_codec12_command_encoding(name: str, text: bytes) -> None:
    assert encode_codec12(text) == tv(name)
    frame = decode_command_data(tv(name)[8:-4])
    assert (frame.codec, frame.type, frame.payload) == (0x0C, 0x05, text)


def test_tv07_tv09_tv10_through_encode_command() -> None:
    codec = TeltonikaStreamCodec()
    assert codec.encode_command(
        Command(id="c1", imei=IMEI, type="custom", params={"text": "getinfo"}), NOW
    ) == tv("TV-07")
    assert codec.encode_command(Command(id="c2", imei=IMEI, type="block"), NOW) == tv("TV-09")
    assert codec.encode_command(Command(id="c3", imei=IMEI, type="unblock"), NOW) == tv("TV-10")
    two = TeltonikaStreamCodec({"block_output": 1})
    assert two.encode_command(
        Command(id="c4", imei=IMEI, type="custom", params={"text": "setdigout 11"}), NOW
    ) == tv("TV-11")


def test_tv08_codec12_response_acknowledges_the_command_in_flight() -> None:
    codec = TeltonikaStreamCodec()
    codec.receive(tv("TV-01"), NOW)
    codec.encode_command(Command(id="c1", imei=IMEI, type="custom", params={"text": "getinfo"}), NOW)
    actions = codec.receive(tv("TV-08"), NOW)
    assert len(actions) == 1 and isinstance(actions[0], Store) and actions[0].ack == b""
    (ack,) = actions[0].events
    assert ack == CommandAck(
        imei=IMEI,
        protocol="teltonika",
        server_time=NOW,
        success=True,
        command_id="c1",
        command_type="custom",
        response="INI:2019/7/22 7:22 RTC:2019/7/22 7:53 RST:2 ERR:1 SR:0 BR:0 CF:0 FG:0 FL:0 "
        "TU:0/0 UT:0 SMS:0 NOGPS:0:30 GPS:1 SAT:0 RS:3 RF:65 SF:1 MD:0",
    )


def test_tv20_codec14_command_and_ack() -> None:
    assert encode_codec14("352093081452251", b"getver") == tv("TV-20-command")
    codec = TeltonikaStreamCodec({"command_codec": 14})
    codec.receive(bytes.fromhex("000F") + b"352093081452251", NOW)
    sent = codec.encode_command(
        Command(id="v1", imei="352093081452251", type="custom", params={"text": "getver"}), NOW
    )
    assert sent == tv("TV-20-command")
    frame = decode_command_data(tv("TV-20-response")[8:-4])
    assert (frame.codec, frame.type, frame.imei) == (CODEC_14, 0x06, "352093081452251")
    (store,) = codec.receive(tv("TV-20-response"), NOW)
    (ack,) = store.events
    assert ack.success is True and ack.command_id == "v1"
    assert ack.response == (
        "Ver:03.18.14_04 GPS:AXN_5.10_3333 Hw:FMB120 Mod:15 IMEI:352093081452251 "
        "Init:2018-11-22 7:13 Uptime:17234 MAC:60BDD0016261 SPC:1(0) AXL:0 OBD:0 BL:1.6 BT:4"
    )


def test_tv21_codec13_message() -> None:
    frame = decode_command_data(tv("TV-21")[8:-4])
    assert frame.timestamp == utc("2019-07-19T13:52:52.000Z") and frame.payload == b"getinfo"
    codec = TeltonikaStreamCodec()
    codec.receive(tv("TV-01"), NOW)
    (store,) = codec.receive(tv("TV-21"), NOW)
    assert store.ack == b""  # no answer to a Codec 13 message
    (event,) = store.events
    assert isinstance(event, Position) and event.event == "codec13" and event.valid is False
    assert event.device_time == utc("2019-07-19T13:52:52.000Z")
    assert event.attributes["message"] == "getinfo" and event.latitude is None
