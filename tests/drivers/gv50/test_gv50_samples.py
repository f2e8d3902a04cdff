"""Every sample of the GV50 protocol document, decoded to the values listed there (§7)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from gv50_vectors import FRAMES, sack
from waygps.actions import Flagged, Identified, Rejected, Send, Store
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
from waygps.events import Alarm, CommandAck, Heartbeat, Position

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def P(lat: float | None, lon: float | None, speed: float | None, course: float | None, alt: float | None,
      when: str | None, valid: bool, ignition: bool | None = None, hdop: float | None = None) -> dict[str, Any]:
    return dict(latitude=lat, longitude=lon, speed=speed, course=course, altitude=alt,
                device_time=utc(when) if when else NOW, valid=valid, ignition=ignition, hdop=hdop)


# name: (IMEI, event, buffered, [positions], attributes of the last position, alarm)
GTFRI_P = P(31.222073, 121.354335, 4.3, 92.0, 70.0, "2009-02-14T01:32:54", True, hdop=1.0)
EXPECTED: dict[str, tuple[str, str, bool, list[dict[str, Any]], dict[str, Any], str | None]] = {
    "S1": ("862894020180553", "GTFRI", False,
           [P(-17.720434, -62.899703, 20.0, 147.0, 329.7, "2016-03-09T11:35:48", True, True, 1.0)],
           dict(mcc=736, mnc=3, lac=0x6AAE, cell_id=0x3381, report_id=1, report_type=0, mileage_km=913.3,
                battery=0, device_status="220101", motion=True, digital_inputs=1, output_1=True,
                send_time="20160309073554", count="132B", gps_accuracy=1), None),
    "S2": ("862193020451183", "GTFRI", False,
           [P(-25.368191, -57.513617, 0.0, 163.0, None, "2015-09-18T18:21:45", True, True, 1.0)],
           dict(mileage_km=21235.0, device_status="210100", motion=False), None),
    "S3": ("862894021808798", "GTFRI", True,
           [P(-17.662410, -63.287717, 0.0, 349.0, 394.3, "2016-01-16T23:40:31", True, True, 1.0)],
           dict(mileage_km=3326.8, battery=94, device_status="220100"), None),
    "S4": ("135790246811220", "GTFRI", False,
           [dict(GTFRI_P, ignition=None),
            P(31.222073, 121.354335, 4.3, 92.0, 70.0, "2009-01-01T00:00:00", False, True, None)],
           dict(vin="1G1JC5444R7252367", report_id=0, report_type=0, lac=0x18D8, mileage_km=2000.0,
                hour_meter="12345:12:34", battery=80, device_status="210100", fuel_level_percent=50,
                gps_accuracy=0), None),
    "S5": ("860599000306845", "GTFRI", False,
           [P(47.681639, 8.611466, 2.1, 0.0, 426.7, "2018-12-14T13:46:03", True, None, 1.0),
            P(47.681846, 8.611600, 5.7, 34.0, 437.3, "2018-12-14T13:46:19", True, None, 1.0),
            P(47.681983, 8.611893, 4.4, 62.0, 438.2, "2018-12-14T13:46:33", True, None, 1.0),
            P(47.682040, 8.612236, 4.8, 78.0, 436.6, "2018-12-14T13:46:48", True, None, 1.0)],
           dict(device_name="G3-313", report_id=0, report_type=0, mileage_km=25.2, battery=83), None),
    "S6": ("135790246811220", "GTFRI", False,
           [GTFRI_P, P(31.222073, 121.354335, 4.3, 92.0, 70.0, "2009-01-01T00:00:00", False)],
           dict(report_id=0, report_type=0), None),
    "S7": ("866314060299813", "GTFRI", False,
           [P(-33.008722, -68.891157, 0.0, 275.0, 937.7, "2026-05-14T01:04:56", True, False, 1.0)],
           dict(battery=100, device_status="110000", motion=False, protocol_version="8020040703",
                device_type="802004"), None),
    "S8": ("869606020188383", "GTFRI", False,
           [P(50.700200, 8.606297, 43.4, 80.0, 252.4, "2020-07-21T09:01:09", True, True, 2.0)],
           dict(report_id=4, report_type=0, input_1=False, device_status="220100", gps_accuracy=2), None),
    "S9": ("863286020016706", "GTFRI", True,
           [P(40.391669, 49.903915, None, None, None, "2014-08-18T10:58:15", True, True, 1.0)],
           dict(device_status="210100", send_time=None, count="000C"), None),
    "S10": ("A10000499AEF9B", "GTRTL", False,
            [P(39.578517, -76.902274, 0.2, 0.0, 305.4, "2016-11-01T15:50:01", True, None, 10.0)],
            dict(battery=73, gps_accuracy=10), None),
    "S11": ("135790246811220", "GTDOG", False, [GTFRI_P], dict(mileage_km=2000.0), None),
    "S12": ("135790246811220", "GTSOS", False, [GTFRI_P], dict(mcc=460, mnc=0, lac=0x18D8, cell_id=0x6141),
            "sos"),
    "S13": ("135790246811220", "GTLBC", False, [GTFRI_P], dict(caller_number="+8613800000000"), None),
    "S14": ("135790246811220", "GTHBM", False, [GTFRI_P], dict(report_id=1, report_type=0, mileage_km=2000.0),
            "harsh_braking"),
    "S15": ("862894020178276", "GTIDA", False,
            [P(-17.776349, -63.169675, 0.0, 0.0, 413.0, "2016-03-17T22:21:29", False)],
            dict(driver_id="01C68011010000C7", report_type=1, mileage_km=34.9, gps_accuracy=0), None),
    "S16": ("863457051562823", "GTERI", False,
            [P(-34.625413, -58.695253, 0.0, 15.0, 28.2, "2023-01-19T19:33:05", True, True, 1.0)],
            dict(eri_mask="00000002", mcc=722, mnc=7, lac=0x1168, cell_id=0x16B3BB, battery=99,
                 device_status="210100", onewire_id_1="28F8A149F69A3C25", temperature_1=25.0), None),
    "S17": ("862894020180553", "GTIGN", False,
            [P(-17.800608, -63.158195, 0.2, 189.0, 420.0, "2016-03-09T02:29:51", False, True)],
            dict(previous_state_seconds=9860, mileage_km=881.2, send_time="20160308222956"), None),
    "S18": ("862894020180553", "GTIGF", True,
            [P(-17.764712, -63.089213, 0.0, 240.0, 390.3, "2016-03-09T12:28:54", False, False)],
            dict(previous_state_seconds=1958, mileage_km=936.8), None),
    "S19": ("867162025085234", "GTIGF", False,
            [P(32.450321, -116.867638, 0.0, 92.0, 111.2, "2018-03-27T07:08:35", False, False)],
            dict(previous_state_seconds=3519, cell_id=0x52CC3DE, mileage_km=243.1), None),
    "S20": ("867162025085234", "GTIGL", False,
            [P(32.450321, -116.867638, 0.0, 92.0, 111.2, "2018-03-27T07:08:38", True, False, 1.0)],
            dict(report_id=0, report_type=1), None),
    "S21": ("868589060169789", "GTIGN", True,
            [dict(P(-33.393457, -70.616413, 0.0, 105.0, 532.2, "2024-06-10T20:17:12", True, True, 1.0),
                  satellites=11)],
            dict(device_name="ra79", previous_state_seconds=379, cell_id=0x00CFA301, mileage_km=0.0), None),
    "S22": ("867488060278727", "GTIGF", False,
            [P(42.654554, 14.003446, 0.0, 184.0, 32.6, "2024-02-19T12:46:29", True, False, 1.0)],
            dict(previous_state_seconds=509, mileage_km=0.0, device_type="802005"), None),
    "S23": ("867963063190000", "GTIGF", True, [P(None, None, None, None, None, None, False, False)],
            dict(mcc=268, mnc=6, lac=0x22C4, cell_id=0x13E5, time_source="server", imei_luhn_valid=False), None),
    "S24": ("862894020178276", "GTSTT", False,
            [P(-17.776330, -63.169745, 0.0, 0.0, 411.3, "2016-03-19T13:22:20", False, True)],
            dict(state="21", motion=False), None),
    "S25": ("860599000508846", "GTSTT", False,
            [P(39.497203, -76.657998, 0.0, 84.0, 107.5, "2015-06-23T16:06:22", False, None)],
            dict(state="41", motion=False), None),
    "S26": ("359231038939904", "GTSTT", False,
            [P(50.798077, 8.924243, 0.0, 117.0, 346.0, "2013-06-18T12:51:52", False, None)],
            dict(state="42", motion=True), None),
    "S27": ("358688000000158", "GTBPL", False,
            [P(31.222073, 121.354335, 4.3, 92.0, 70.0, "2011-02-14T01:32:54", False)],
            dict(batteryVoltage=3.53), "low_battery"),
    "S28": ("865084030001323", "GTMPN", False,
            [P(31.164105, 121.393023, 1.6, 0.0, -93.1, "2017-06-19T10:31:13", False)],
            dict(device_name="gb100"), None),
    "S29": ("866425030235982", "GTPFA", False, [P(None, None, None, None, None, None, False)],
            dict(send_time="20190208124849", time_source="server", device_name="GL300M"), "power_off"),
    "S30": ("866425030235982", "GTPNA", False, [P(None, None, None, None, None, None, False)],
            dict(send_time="20190208124909", time_source="server"), None),
    "S31": ("867292060140006", "GTPNA", False, [P(None, None, None, None, None, None, False)],
            dict(send_time="20250516120427", count="0121"), None),
    "S32": ("135790246811220", "GTINF", False, [P(None, None, None, None, None, None, False, False)],
            dict(state="16", towed=True, motion=True, iccid="898600810906F8048812", rssi=16, ber=0,
                 power_connected=True, power=12.0, batteryVoltage=4.4, charging=False,
                 last_fix_time="2009-02-14T01:32:54Z", time_zone="+0800"), None),
    "S36": ("860599000773978", "GTVER", False, [P(None, None, None, None, None, None, False)],
            dict(device_model="GL300", firmware_version="10.03", hardware_version="1.03"), None),
}


def stream_bytes(name: str) -> bytes:
    """A sample as a device would send it on TCP (corpus strings without ``$`` end with a line feed)."""
    frame = FRAMES[name]
    return frame if frame.endswith(b"$") else frame + b"\r\n"


def decode(name: str) -> list[Any]:
    """Actions of a fresh TCP codec for the sample; a UDP codec must agree."""
    actions = Gv50StreamCodec().receive(stream_bytes(name), NOW)
    assert Gv50DatagramCodec().receive_datagram(FRAMES[name], NOW) == actions
    return actions


def events(actions: list[Any]) -> list[Any]:
    return [e for a in actions if isinstance(a, Store) for e in a.events]


@pytest.mark.parametrize("name", sorted(EXPECTED, key=lambda n: int(n[1:])))
def test_report_sample(name: str) -> None:
    imei, event, buffered, positions, attributes, alarm = EXPECTED[name]
    actions = decode(name)
    assert actions[0] == Identified(imei)
    assert not [a for a in actions if isinstance(a, (Rejected, Send))]
    stores = [a for a in actions if isinstance(a, Store)]
    assert len(stores) == 1 and stores[0].ack == sack(name)
    found = [e for e in stores[0].events if isinstance(e, Position)]
    assert len(found) == len(positions)
    for number, (position, expected) in enumerate(zip(found, positions)):
        got = {key: getattr(position, key) for key in expected}
        assert got == expected, f"{name} P{number + 1}"
        assert position.imei == imei and position.event == event and position.protocol == "gv50"
        assert position.buffered is buffered and position.server_time == NOW
        assert position.raw == FRAMES[name].decode().rstrip("$")
        assert (position.attributes.get("time_source") == "server") is (expected["device_time"] is NOW)
    last = found[-1].attributes
    assert {key: last.get(key) for key in attributes} == attributes
    assert len({p.key for p in found}) == len(found)  # one document per block
    alarms = [e for e in stores[0].events if isinstance(e, Alarm)]
    assert [a.alarm for a in alarms] == ([alarm] if alarm else [])
    for a in alarms:
        assert a.position_id == found[-1].document_id and a.imei == imei


def test_tail_fields_belong_to_the_last_block_only() -> None:
    first, second = [e for e in events(decode("S4")) if isinstance(e, Position)]
    assert "mileage_km" not in first.attributes and "battery" not in first.attributes
    assert second.attributes["mileage_km"] == 2000.0 and second.ignition is True and first.ignition is None


def test_luhn_failure_is_noticed_not_rejected() -> None:
    actions = decode("S11")  # 135790246811220 fails its check digit
    assert Flagged("imei_luhn", b"135790246811220") in actions
    assert events(actions)[0].attributes["imei_luhn_valid"] is False
    assert "imei_luhn_valid" not in events(decode("S1"))[0].attributes


def test_heartbeat_S33() -> None:
    actions = decode("S33")
    assert actions[0] == Identified("135790246811220")
    sends = [a for a in actions if isinstance(a, Send)]
    assert sends == [Send(b"+SACK:GTHBD,1A0401,11F0$")]  # exactly one reply, not +SACK:11F0$
    stores = [a for a in actions if isinstance(a, Store)]
    assert len(stores) == 1 and stores[0].ack == b""
    assert stores[0].events == (Heartbeat(imei="135790246811220", protocol="gv50", server_time=NOW),)


@pytest.mark.parametrize("name, serial, command_type", [("S34", "FFFF", None), ("S35", "0008", None)])
def test_command_acknowledgements(name: str, serial: str, command_type: str | None) -> None:
    actions = decode(name)
    stores = [a for a in actions if isinstance(a, Store)]
    assert len(stores) == 1 and stores[0].ack == sack(name)
    (ack,) = stores[0].events
    assert isinstance(ack, CommandAck)
    assert (ack.serial, ack.command_type, ack.success) == (serial, command_type, True)
    assert ack.response == FRAMES[name].decode()


def test_X1_truncated_frame_keeps_its_fix_flagged_and_without_sack() -> None:
    # The count is missing (the last field is a cut send time) but the block is whole: the fix is
    # kept, the frame flagged twice, and nothing is acknowledged (there is no count to echo).
    actions = decode("X1")
    assert [type(a) for a in actions] == [Identified, Flagged, Flagged, Store]
    assert [a.reason for a in actions[1:3]] == ["bad_count", "decoded_by_shape"]
    assert actions[1].raw == FRAMES["X1"].rstrip(b"$")  # the frame as cut from the stream
    store = actions[3]
    assert store.ack == b""
    (position,) = store.events
    assert (position.latitude, position.longitude, position.speed, position.course, position.altitude) == (
        38.735379, -90.366478, 0.0, 97.0, 179.8)
    assert position.device_time == datetime(2023, 6, 16, 18, 32, 31, tzinfo=timezone.utc)
    assert position.valid and position.hdop == 1.0
    assert position.attributes["frame_flags"] == ["bad_count", "decoded_by_shape"]
    assert (position.attributes["mcc"], position.attributes["cell_id"]) == (310, 0x03ADF710)


def test_X2_old_dialect_is_rejected_without_sack() -> None:
    actions = decode("X2")
    assert [type(a) for a in actions] == [Rejected] and actions[0].reason == "unsupported_dialect"


def test_X5_out_of_range_block_is_dropped_but_acknowledged() -> None:
    actions = decode("X5")
    assert actions[0] == Identified("862894020180553")
    assert [a.reason for a in actions if isinstance(a, Rejected)] == ["invalid_position"]
    (store,) = [a for a in actions if isinstance(a, Store)]
    assert store.ack == b"+SACK:132B$"
    assert store.events == (Heartbeat(imei="862894020180553", protocol="gv50", server_time=NOW),)


@pytest.mark.parametrize("name, model", [("S1", "GV300"), ("S22", "GV355CEU"), ("S33", None), ("S21", "GV310LAU")])
def test_model_name_from_the_device_type(name: str, model: str | None) -> None:
    positions = [e for e in events(decode(name)) if isinstance(e, Position)]
    if model is None:
        assert positions == []  # a heartbeat has no report, so no model either
    else:
        assert positions and all(p.attributes.get("model") == model for p in positions)
