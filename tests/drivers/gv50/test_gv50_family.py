"""@Track report types of the wider Queclink family (GV55, GV300/GV300W, GV350M, GV500/GV600,
GL300/GL320, GL500/GL530, GT501): one real-shaped frame per type, its values checked by hand
against the layouts in docs/drivers/gv50.md; variants (Wi-Fi blocks, missing protocol version,
unknown types with extra fields and several blocks); properties of the shape finder."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest

from waygps.actions import Flagged, Identified, Rejected, Store
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
from waygps.drivers.gv50.reports import LAYOUTS
from waygps.events import Alarm, Position

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def run(frame: str) -> tuple[list[Any], list[Position], Store | None]:
    data = frame.encode()
    actions = Gv50StreamCodec().receive(data, NOW)
    assert Gv50DatagramCodec().receive_datagram(data, NOW) == actions  # TCP and UDP agree
    stores = [a for a in actions if isinstance(a, Store)]
    positions = [e for s in stores for e in s.events if isinstance(e, Position)]
    return actions, positions, stores[0] if stores else None


def flags(actions: list[Any]) -> list[str]:
    return [a.reason for a in actions if isinstance(a, Flagged)]


# (frame, [(lat, lon, speed, course, altitude, fix time, hdop, valid)], attributes, flags)
# Each frame was written from the layout of its type; the numbers under it were read off by hand.
CASES: dict[str, tuple[str, list[tuple], dict[str, Any], list[str]]] = {
    # GTCAN (GV300W CAN): 4 report type, 5 CAN state, 6 mask C00001FF = bits 0-8 + GPS (30) + cell (31):
    # VIN, ignition key 2, distance H1234567 (hm), fuel used, RPM (bit 5 first), speed, coolant,
    # consumption L/H2.5, fuel level P64.40 (percent), then the block.
    "GTCAN": (
        f"+RESP:GTCAN,270703,{IMEI},gv300w,00,1,C00001FF,WDB9066331S123456,2,H1234567,5123.50,1850,72,88,"
        "L/H2.5,P64.40,1,45.6,121,512.3,13.404954,52.520008,20240301101530,0262,0002,1A2B,00C3D4E5,00,"
        "20240301101532,0A10$",
        [(52.520008, 13.404954, 45.6, 121.0, 512.3, "20240301101530", 1.0, True)],
        dict(vin="WDB9066331S123456", ignition_key=2, obd_odometer_km=123456.7, fuel_used_litres=5123.5,
             engine_rpm=1850, obd_speed_kmh=72.0, coolant_temp_c=88, fuel_consumption=2.5,
             fuel_consumption_unit="L/H", fuel_level_percent=64.4, can_mask="C00001FF", mcc=262, mnc=2,
             lac=0x1A2B, cell_id=0xC3D4E5, report_type=0),
        [],
    ),
    # GTOBD (GV500): VIN at 3, name at 4, 5 report type, 6 OBD mask 70FFFF (bits 0-15, GPS, cell,
    # mileage): VIN, connected, 12650 mV, PIDs, 2150 rpm, 64 km/h, 91 °C, 7.8, 120 km since DTCs
    # cleared, 0 km with MIL, MIL off, 1 DTC P0301, throttle 23 %, load 41 %, fuel 57 %; block; 18250.7 km.
    "GTOBD": (
        f"+RESP:GTOBD,1F0101,{IMEI},1HGCM82633A004352,GV500,0,70FFFF,1HGCM82633A004352,1,12650,983A8140,"
        "2150,64,91,7.8,120,0,0,1,P0301,23,41,57,1,61.4,240,28.5,-46.633308,-23.550520,20240302081245,"
        "0724,0005,0B1C,4D2E,00,18250.7,20240302081250,0B20$",
        [(-23.550520, -46.633308, 61.4, 240.0, 28.5, "20240302081245", 1.0, True)],
        dict(vin="1HGCM82633A004352", device_name="GV500", obd_connected=True, obd_power=12.65,
             obd_supported_pids="983A8140", engine_rpm=2150, obd_speed_kmh=64.0, coolant_temp_c=91,
             fuel_consumption=7.8, dtc_cleared_km=120, mil_distance_km=0, mil_on=False, dtc_count=1,
             dtc_codes="P0301", throttle_percent=23, engine_load_percent=41, fuel_level_percent=57.0,
             mileage_km=18250.7, mcc=724, mnc=5),
        [],
    ),
    # GTOER without a VIN: 4 report type, 5 mask 000070 (RPM, speed, coolant -2 °C), block, mileage.
    "GTOER": (
        f"+RESP:GTOER,360701,{IMEI},,0,000070,2400,77,-2,1,21.7,95,604.1,2.352222,48.856613,20240303120000,"
        "0208,0010,0C4F,1F2A3B,00,5123.4,20240303120002,0B30$",
        [(48.856613, 2.352222, 21.7, 95.0, 604.1, "20240303120000", 1.0, True)],
        dict(engine_rpm=2400, obd_speed_kmh=77.0, coolant_temp_c=-2, obd_mask="000070", mileage_km=5123.4,
             cell_id=0x1F2A3B),
        [],
    ),
    # GTDAT: 4 type, 5-6 reserved, 7 serial data, block.
    "GTDAT": (
        f"+RESP:GTDAT,270B01,{IMEI},gv300w,1,,,>T:25.4|H:40<,1,12.5,270,35.0,-58.381592,-34.603722,"
        "20240410150000,0722,0310,1D2C,0ABCDEF,00,,,,,20240410150002,0B31$",
        [(-34.603722, -58.381592, 12.5, 270.0, 35.0, "20240410150000", 1.0, True)],
        dict(serial_data=">T:25.4|H:40<", report_type=1, cell_id=0x0ABCDEF),
        [],
    ),
    # GTNMR (GL300): 4 reserved, 5 report type 1 (motion), 6 number, block, battery 67 %.
    "GTNMR": (
        f"+RESP:GTNMR,1A0401,{IMEI},,0,1,1,8,0.0,0,95.0,4.895168,52.370216,20240304060000,0204,0008,0D2C,"
        "5E6F,00,67,20240304060002,0B40$",
        [(52.370216, 4.895168, 0.0, 0.0, 95.0, "20240304060000", 8.0, True)],
        dict(report_type=1, battery=67),
        [],
    ),
    # GL500 layout (GTSTR/GTSTP/GTLSP/GTCTN): 4 report ID, 5 type, 6 reserved, 7 temperature, 8 battery.
    "GTSTR": (
        f"+RESP:GTSTR,400201,{IMEI},GL500,0,0,2,21.5,78,1,0.3,15,12.0,-0.127758,51.507351,20240305070000,"
        "0234,0015,03C3,3550,,,,20240305070001,0B50$",
        [(51.507351, -0.127758, 0.3, 15.0, 12.0, "20240305070000", 1.0, True)],
        dict(device_temperature_c=21.5, battery=78, report_id=0, report_type=0),
        [],
    ),
    "GTSTP": (
        f"+RESP:GTSTP,400201,{IMEI},GL500,0,0,2,19.0,55,2,0.0,0,30.0,-3.703790,40.416775,20240305080000,"
        "0214,0001,1A2B,3C4D,,,,20240305080001,0B51$",
        [(40.416775, -3.703790, 0.0, 0.0, 30.0, "20240305080000", 2.0, True)],
        dict(device_temperature_c=19.0, battery=55),
        [],
    ),
    "GTLSP": (
        f"+RESP:GTLSP,400201,{IMEI},GL500,0,0,2,18.5,54,1,2.5,200,31.0,-3.703000,40.416000,20240305090000,"
        "0214,0001,1A2B,3C4D,,,,20240305090001,0B52$",
        [(40.416000, -3.703000, 2.5, 200.0, 31.0, "20240305090000", 1.0, True)],
        dict(device_temperature_c=18.5, battery=54),
        [],
    ),
    "GTCTN": (
        f"+RESP:GTCTN,440200,{IMEI},GL530,0,0,2,,9,1,0.1,174,48.7,-1.061812,51.435270,20240306070000,"
        "0234,0015,0025,145A,,,0000,20240306070001,0B53$",
        [(51.435270, -1.061812, 0.1, 174.0, 48.7, "20240306070000", 1.0, True)],
        dict(battery=9, report_id=0, report_type=0),
        [],
    ),
    # GTLSW / GTTSW (GL300): 4 reserved, 5 switch state, block (cell empty on the first).
    "GTLSW": (
        f"+RESP:GTLSW,300500,{IMEI},,0,1,1,0.0,0,2850.0,-78.512345,-0.180654,20240306080000,,,,,,"
        "20240306080002,0B60$",
        [(-0.180654, -78.512345, 0.0, 0.0, 2850.0, "20240306080000", 1.0, True)],
        dict(switch_state=1),
        [],
    ),
    "GTTSW": (
        f"+RESP:GTTSW,1A0100,{IMEI},,1,0,1,4.3,92,70.0,121.354335,31.222073,20240306090000,0460,0000,18d8,"
        "6141,00,20240306090001,0B61$",
        [(31.222073, 121.354335, 4.3, 92.0, 70.0, "20240306090000", 1.0, True)],
        dict(switch_state=0, lac=0x18D8),
        [],
    ),
    # GTBAA (GV350M): 4 accessory index, 5 type, 6 model, 7 alarm type, 8 append mask 000A
    # (bit 1 MAC, bit 3 voltage mV), block.
    "GTBAA": (
        f"+RESP:GTBAA,F1040C,{IMEI},GV350M,FF,3,0,04,000A,7805412A3B4C,3120,1,0.0,213,2908.3,-78.691944,"
        "-0.951426,20240307090000,,,,,,20240307090002,0B70$",
        [(-0.951426, -78.691944, 0.0, 213.0, 2908.3, "20240307090000", 1.0, True)],
        dict(accessory_index="FF", accessory_type=3, alarm_type="04", accessory_mac="7805412A3B4C",
             accessory_voltage=3.12),
        [],
    ),
    # GTBID: 4 number, 5 accessory type, 6 append mask 000A, MAC, voltage, block.
    "GTBID": (
        f"+RESP:GTBID,C20105,{IMEI},GV350M,1,0,000A,B80EA11FF800,2934,1,0.0,0,1506.5,-99.192686,18.932709,"
        "20240308100000,0334,0020,0232,029D4E02,,20240308100002,0B80$",
        [(18.932709, -99.192686, 0.0, 0.0, 1506.5, "20240308100000", 1.0, True)],
        dict(accessory_type=0, accessory_mac="B80EA11FF800", accessory_voltage=2.934, cell_id=0x029D4E02),
        [],
    ),
    # GTDAR: 4 warning type, 5-7 reserved, block.
    "GTDAR": (
        f"+RESP:GTDAR,F10406,{IMEI},,4,0,,,1,18.5,0,129.4,114.015430,22.537279,20240309110000,0460,0000,"
        "27BD,0DFC,,,,20240309110001,0B90$",
        [(22.537279, 114.015430, 18.5, 0.0, 129.4, "20240309110000", 1.0, True)],
        dict(warning_type=4),
        [],
    ),
    # GTTRI from older firmware: no protocol version (the IMEI is field 1); the version string comes
    # after the block instead. Decoded, flagged.
    "GTTRI": (
        f"+RESP:GTTRI,{IMEI},1,0,99,1,0.0,354,18.5,18.821100,-34.084002,20240310120000,0655,0001,00DD,1CAE,"
        "00,0103010100,20240310120001,0BA0$",
        [(-34.084002, 18.821100, 0.0, 354.0, 18.5, "20240310120000", 1.0, True)],
        dict(protocol_version="", mcc=655, mnc=1),
        ["missing_protocol_version"],
    ),
    # GTSWG: 4 geofence active, block (accuracy 2).
    "GTSWG": (
        f"+RESP:GTSWG,110100,{IMEI},,1,2,2.1,0,27.1,121.390717,31.164424,20240311130000,0460,0000,1878,0873,"
        ",20240311130001,0BB0$",
        [(31.164424, 121.390717, 2.1, 0.0, 27.1, "20240311130000", 2.0, True)],
        dict(geofence_active=1),
        [],
    ),
    # GTTMP (GL300): 4 alarm type, 5 temperature, 6 number ... block, battery 80 %.
    "GTTMP": (
        f"+RESP:GTTMP,110100,{IMEI},,2,60,1,1,4.3,92,70.0,121.354335,31.222073,20240312140000,0460,0000,"
        "18d8,6141,00,80,20240312140001,0BC0$",
        [(31.222073, 121.354335, 4.3, 92.0, 70.0, "20240312140000", 1.0, True)],
        dict(temperature_alarm=2, battery=80),
        [],
    ),
    # GTTEM (GV300): 4 alarm type, 5 report byte, 6 number, block, mileage.
    "GTTEM": (
        f"+RESP:GTTEM,060228,{IMEI},,3,10,1,1,55.0,180,40.0,-63.181234,-17.783456,20240313150000,0736,0003,"
        "6AAE,3381,00,1234.5,20240313150001,0BD0$",
        [(-17.783456, -63.181234, 55.0, 180.0, 40.0, "20240313150000", 1.0, True)],
        dict(temperature_alarm=3, mileage_km=1234.5),
        [],
    ),
    # GTJDS: 4 jamming state, block.
    "GTJDS": (
        f"+RESP:GTJDS,060228,{IMEI},,2,1,0.0,0,100.0,-63.181111,-17.783222,20240314160000,0736,0003,6AAE,"
        "3381,00,20240314160001,0BE0$",
        [(-17.783222, -63.181111, 0.0, 0.0, 100.0, "20240314160000", 1.0, True)],
        dict(jamming_state=2),
        [],
    ),
    # GTGCR (GL300): 4 mode, 5 radius, 6 check interval, 7 number, block, battery 90 %.
    "GTGCR": (
        f"+RESP:GTGCR,1A0100,{IMEI},,3,50,180,1,1,4.3,92,70.0,121.354335,31.222073,20240315170000,0460,0000,"
        "18d8,6141,00,90,20240315170001,0BF0$",
        [(31.222073, 121.354335, 4.3, 92.0, 70.0, "20240315170000", 1.0, True)],
        dict(battery=90),
        [],
    ),
    # GTEPS / GTAIS: 4 external power (mV) / analog input (mV), report byte, number, block, mileage.
    "GTEPS": (
        f"+RESP:GTEPS,060228,{IMEI},,11850,20,1,1,0.0,0,50.0,-63.181000,-17.783000,20240316180000,0736,0003,"
        "6AAE,3381,00,2345.6,20240316180001,0C00$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240316180000", 1.0, True)],
        dict(power=11.85, mileage_km=2345.6),
        [],
    ),
    "GTAIS": (
        f"+RESP:GTAIS,060228,{IMEI},,3300,11,1,1,0.0,0,50.0,-63.181000,-17.783000,20240316190000,0736,0003,"
        "6AAE,3381,00,2345.7,20240316190001,0C01$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240316190000", 1.0, True)],
        dict(analog_input_mv=3300, mileage_km=2345.7),
        [],
    ),
    # GTMPN / GTMPF / GTBTC / GTSTC: block at 4.
    "GTMPF": (
        f"+RESP:GTMPF,060228,{IMEI},,1,0.0,0,50.0,-63.181000,-17.783000,20240317080000,0736,0003,6AAE,3381,"
        "00,20240317080001,0C10$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240317080000", 1.0, True)],
        {}, [],
    ),
    "GTMPN": (
        f"+RESP:GTMPN,060228,{IMEI},,1,0.0,0,50.0,-63.181000,-17.783000,20240317090000,0736,0003,6AAE,3381,"
        "00,20240317090001,0C11$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240317090000", 1.0, True)],
        {}, [],
    ),
    "GTBTC": (
        f"+RESP:GTBTC,1A0100,{IMEI},,1,0.0,0,50.0,-63.181000,-17.783000,20240317100000,0736,0003,6AAE,3381,"
        "00,20240317100001,0C12$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240317100000", 1.0, True)],
        {}, [],
    ),
    "GTSTC": (
        f"+RESP:GTSTC,1A0100,{IMEI},,3,0.0,0,50.0,-63.181000,-17.783000,20240317110000,0736,0003,6AAE,3381,"
        "00,20240317110001,0C13$",
        [(-17.783000, -63.181000, 0.0, 0.0, 50.0, "20240317110000", 3.0, True)],
        {}, [],
    ),
    # GTIDN / GTIDF (GV300): reserved, report byte, number, block, mileage.
    "GTIDN": (
        f"+RESP:GTIDN,060228,{IMEI},,,10,1,1,0.0,0,50.0,-63.182000,-17.784000,20240318080000,0736,0003,"
        "6AAE,3381,00,3000.1,20240318080001,0C20$",
        [(-17.784000, -63.182000, 0.0, 0.0, 50.0, "20240318080000", 1.0, True)],
        dict(mileage_km=3000.1), [],
    ),
    "GTIDF": (
        f"+RESP:GTIDF,060228,{IMEI},,600,10,1,1,0.0,0,50.0,-63.182000,-17.784000,20240318081000,0736,0003,"
        "6AAE,3381,00,3000.2,20240318081001,0C21$",
        [(-17.784000, -63.182000, 0.0, 0.0, 50.0, "20240318081000", 1.0, True)],
        dict(mileage_km=3000.2), [],
    ),
    # GTVGN / GTVGF (GV600M): duration, block, hour meter, mileage.
    "GTVGN": (
        f"+RESP:GTVGN,C2010D,{IMEI},GV600M,453966,1,0.0,0,163.9,10.239379,45.931389,20240319090000,0222,0010,"
        "2F31,006D7621,,,0.0,20240319090001,0C30$",
        [(45.931389, 10.239379, 0.0, 0.0, 163.9, "20240319090000", 1.0, True)],
        dict(previous_state_seconds=453966, mileage_km=0.0), [],
    ),
    "GTVGF": (
        f"+RESP:GTVGF,C2010D,{IMEI},GV600M,120,1,0.0,0,163.9,10.239379,45.931389,20240319100000,0222,0010,"
        "2F31,006D7621,,,0.0,20240319100001,0C31$",
        [(45.931389, 10.239379, 0.0, 0.0, 163.9, "20240319100000", 1.0, True)],
        dict(previous_state_seconds=120), [],
    ),
    # GTHBM (GV55): report byte 21 = speed band 2, type 1 (harsh acceleration).
    "GTHBM": (
        f"+RESP:GTHBM,0F0100,{IMEI},,,21,1,1,52.0,92,70.0,121.354335,31.222073,20240320110000,0460,0000,"
        "18d8,6141,00,2000.0,20240320110001,0C40$",
        [(31.222073, 121.354335, 52.0, 92.0, 70.0, "20240320110000", 1.0, True)],
        dict(report_id=2, report_type=1, mileage_km=2000.0), [],
    ),
    # GTCRA (GV300W): 4 crash counter, block.
    "GTCRA": (
        f"+RESP:GTCRA,270302,{IMEI},,2,1,35.2,90,100.0,-116.867638,32.450321,20240321120000,0334,0020,2B24,"
        "52CC3DE,00,20240321120001,0C50$",
        [(32.450321, -116.867638, 35.2, 90.0, 100.0, "20240321120000", 1.0, True)],
        dict(crash_counter=2), [],
    ),
    # GTDOG (GL200 layout): report ID 0, type 0 as two fields, block, mileage.
    "GTDOG": (
        f"+RESP:GTDOG,020102,{IMEI},,0,0,1,1,4.3,92,70.0,121.354335,31.222073,20240322130000,0460,0000,"
        "18d8,6141,00,2000.0,20240322130001,0C60$",
        [(31.222073, 121.354335, 4.3, 92.0, 70.0, "20240322130000", 1.0, True)],
        dict(mileage_km=2000.0), [],
    ),
    # GTLBC: 4 caller number, block at 5.
    "GTLBC": (
        f"+RESP:GTLBC,020102,{IMEI},,+5511999990000,1,4.3,92,70.0,121.354335,31.222073,20240323140000,0460,"
        "0000,18d8,6141,00,,20240323140001,0C70$",
        [(31.222073, 121.354335, 4.3, 92.0, 70.0, "20240323140000", 1.0, True)],
        dict(caller_number="+5511999990000"), [],
    ),
    # GTERI (GV300W): ERI mask 00000000, power, report byte, number, block, GV tail.
    "GTERI": (
        f"+RESP:GTERI,271002,{IMEI},,00000000,12500,10,1,1,0.0,15,28.2,-58.695253,-34.625413,20240324150000,"
        "0722,0007,1168,16B3BB,00,100.5,,,,99,210100,20240324150001,0C80$",
        [(-34.625413, -58.695253, 0.0, 15.0, 28.2, "20240324150000", 1.0, True)],
        dict(eri_mask="00000000", power=12.5, mileage_km=100.5, battery=99, device_status="210100"), [],
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_listed_report_type_yields_its_position(kind: str) -> None:
    frame, blocks, attributes, expected_flags = CASES[kind]
    actions, positions, store = run(frame)
    assert actions[0] == Identified(IMEI), kind
    assert not [a for a in actions if isinstance(a, Rejected)], kind
    assert flags(actions) == expected_flags, kind
    assert store is not None and store.ack == b"+SACK:" + frame[-5:-1].encode() + b"$", kind
    got = [(p.latitude, p.longitude, p.speed, p.course, p.altitude, p.device_time, p.hdop, p.valid)
           for p in positions]
    want = [(lat, lon, speed, course, alt, utc(when), hdop, valid)
            for lat, lon, speed, course, alt, when, hdop, valid in blocks]
    assert got == want, kind
    last = positions[-1]
    assert all(p.event == kind for p in positions)
    for key, value in attributes.items():
        assert last.attributes.get(key) == value, (kind, key)
    assert ("frame_flags" in last.attributes) == bool(expected_flags)


def test_listed_types_are_known_layouts() -> None:
    # Every type the issue names has a layout (none of them is "decoded by shape" as unknown).
    listed = ("GTCAN GTOBD GTOER GTDAT GTNMR GTSTR GTSTP GTLSP GTLSW GTTSW GTBAA GTBID GTDAR GTCTN GTTRI "
              "GTSWG GTTMP GTTEM GTJDS GTGCR GTERI GTEPS GTAIS GTMPN GTMPF GTBTC GTSTC GTIDN GTIDF GTVGN "
              "GTVGF GTHBM GTCRA GTDOG GTLBC").split()
    assert [kind for kind in listed if kind not in LAYOUTS] == []
    assert set(listed) <= set(CASES)


def test_gtcan_ignition_key_sets_ignition_and_crash_raises_an_alarm() -> None:
    _, positions, _ = run(CASES["GTCAN"][0])
    assert positions[0].ignition is True  # ignition key 2 (> 0)
    actions, _, store = run(CASES["GTCRA"][0])
    alarms = [e for e in store.events if isinstance(e, Alarm)] if store else []
    assert [a.alarm for a in alarms] == ["crash"]


def test_gtcan_without_cell_part_keeps_the_fix() -> None:
    # Mask 40000020: RPM, then the GPS part (bit 30) without the cell part (bit 31): 7 fields only.
    frame = (f"+RESP:GTCAN,270703,{IMEI},,00,1,40000020,900,1,30.0,10,5.0,-70.648270,-33.456940,"
             "20240401100000,20240401100001,0D00$")
    actions, positions, _ = run(frame)
    assert flags(actions) == []
    (position,) = positions
    assert (position.latitude, position.longitude, position.speed) == (-33.456940, -70.648270, 30.0)
    assert position.attributes["engine_rpm"] == 900 and "mcc" not in position.attributes


def test_gt501_fri_with_wifi_access_points_keeps_the_fix() -> None:
    # GT501: report ID, type, number, an extra field, then a block whose fix time is followed by two
    # Wi-Fi access points (MAC, RSSI, three reserved fields each) before the cell part.
    frame = (f"+RESP:GTFRI,423037,{IMEI},GT501,0,1,1,5,12,0.1,0,46.8,-95.559173,30.109955,20240402100000,2,"
             "0e36c9916485,-50,,,,e831cd5eb79d,-73,,,,310,10,711D,81ECF0F,00,,93,20240402100003,0D10$")
    actions, positions, store = run(frame)
    assert flags(actions) == ["wifi_blocks", "decoded_by_shape"]
    (position,) = positions
    assert (position.latitude, position.longitude, position.speed, position.course, position.altitude) == (
        30.109955, -95.559173, 0.1, 0.0, 46.8)
    assert position.hdop == 12.0 and position.device_time == utc("20240402100000")
    assert position.attributes["wifi_access_points"] == [
        {"mac": "0E36C9916485", "rssi": -50}, {"mac": "E831CD5EB79D", "rssi": -73}]
    assert (position.attributes["mcc"], position.attributes["mnc"], position.attributes["cell_id"]) == (
        310, 10, 0x81ECF0F)
    assert store is not None and store.ack == b"+SACK:0D10$"


def test_unknown_type_with_extra_fields_and_two_blocks_is_decoded_by_shape() -> None:
    # A report type no layout knows, a model name and a mask before two blocks, one field after.
    frame = (f"+RESP:GTXYZ,8020050502,{IMEI},GV355CEU,MODEL-X,0000FFFF,2,"
             "1,10.0,45,20.0,14.003446,42.654554,20240403100000,0222,0001,0FAD,0497F715,00,"
             "0,12.0,50,21.0,14.003500,42.654600,20240403100030,0222,0001,0FAD,0497F715,00,"
             "77,20240403100031,0D20$")
    actions, positions, store = run(frame)
    assert flags(actions) == ["decoded_by_shape"]
    assert [(p.latitude, p.longitude, p.speed, p.valid) for p in positions] == [
        (42.654554, 14.003446, 10.0, True), (42.654600, 14.003500, 12.0, False)]  # accuracy 0: last known
    assert positions[1].attributes["battery"] == 77 and "battery" not in positions[0].attributes
    assert positions[0].attributes["frame_flags"] == ["decoded_by_shape"]
    assert store is not None and store.ack == b"+SACK:0D20$"


def test_unknown_type_without_a_block_stays_a_heartbeat() -> None:
    actions, positions, store = run(f"+RESP:GTQQQ,060228,{IMEI},,1,2,3,20240404100000,0D30$")
    assert flags(actions) == ["unknown_report_type"] and positions == []
    assert store is not None and store.ack == b"+SACK:0D30$"


def test_missing_version_fri_keeps_the_fix_and_is_acknowledged() -> None:
    frame = (f"+RESP:GTFRI,{IMEI},,,10,1,1,20.0,147,329.7,-62.899703,-17.720434,20240405100000,0736,0003,"
             "6AAE,3381,00,913.3,,,,50,220101,,,,20240405100001,0D40$")
    actions, positions, store = run(frame)
    assert flags(actions) == ["missing_protocol_version"]
    (position,) = positions
    assert (position.latitude, position.longitude, position.ignition) == (-17.720434, -62.899703, True)
    assert position.attributes["battery"] == 50
    assert store is not None and store.ack == b"+SACK:0D40$"


def test_bad_count_with_a_fix_is_kept_flagged_and_not_acknowledged() -> None:
    frame = (f"+RESP:GTIGN,060228,{IMEI},,100,1,0.2,189,420.0,-63.158195,-17.800608,20240406100000,0736,0003,"
             "6AD4,3471,00,,881.2,20240406100001,XYZ$")
    actions, positions, store = run(frame)
    assert flags(actions) == ["bad_count", "decoded_by_shape"]
    (position,) = positions
    assert (position.latitude, position.longitude) == (-17.800608, -63.158195)
    assert store is not None and store.ack == b""


# --- properties ---------------------------------------------------------------------

# Filler fields that can never look like a block: no decimal point, never 14 digits.
FILLER = st.text(alphabet="ABCDEFXYZ0123456789_-+", max_size=8)
UNKNOWN_TYPES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3).map(
    lambda t: "GT" + t).filter(lambda t: t not in LAYOUTS)


@st.composite
def blocks(draw: Any) -> tuple[list[str], tuple]:
    accuracy = draw(st.integers(0, 50))
    speed = draw(st.integers(0, 9999)) / 10
    course = draw(st.integers(0, 359))
    altitude = draw(st.integers(-9999, 99999)) / 10
    lon = draw(st.integers(-180_000_000, 180_000_000)) / 1e6
    lat = draw(st.integers(-90_000_000, 90_000_000)) / 1e6
    when = draw(st.datetimes(datetime(2001, 1, 1), datetime(2030, 12, 31))).replace(microsecond=0)
    cell = draw(st.sampled_from([["0736", "0003", "6AAE", "3381", "00"], ["", "", "", "", ""],
                                 ["0460", "0000", "18d8", "52CC3DE", ""]]))
    fields = [str(accuracy), f"{speed:.1f}", str(course), f"{altitude:.1f}", f"{lon:.6f}", f"{lat:.6f}",
              when.strftime("%Y%m%d%H%M%S")] + cell
    return fields, (float(f"{lat:.6f}"), float(f"{lon:.6f}"), float(f"{speed:.1f}"), float(course),
                    float(f"{altitude:.1f}"), when.replace(tzinfo=timezone.utc), accuracy != 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.one_of(UNKNOWN_TYPES, st.sampled_from(sorted(LAYOUTS))), block=blocks(),
       before=st.lists(FILLER, min_size=1, max_size=8), after=st.lists(FILLER, max_size=6))
def test_a_well_formed_block_yields_exactly_its_position(kind: str, block: tuple, before: list[str],
                                                         after: list[str]) -> None:
    # Any report type - unknown, read by shape, or with a field-by-field layout that the extra
    # fields before the block throw off - with one well-formed block gives exactly that position.
    fields, want = block
    frame = ",".join([f"+RESP:{kind}", "060228", IMEI] + before + fields + after + ["20240101000000", "1A2B"])
    actions = Gv50StreamCodec().receive(frame.encode() + b"$", NOW)
    positions = [e for a in actions if isinstance(a, Store) for e in a.events if isinstance(e, Position)]
    got = [(p.latitude, p.longitude, p.speed, p.course, p.altitude, p.device_time, p.valid) for p in positions]
    assert got == [want]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.one_of(UNKNOWN_TYPES, st.sampled_from(sorted(LAYOUTS))),
       fields=st.lists(st.one_of(FILLER, st.sampled_from(["", "-62.899703", "20160309113548", "0.0", "nan",
                                                          "1e400", "-", ".", "00", "FF", "9" * 30, "\x00"])),
                       max_size=60),
       count=st.sampled_from(["1A2B", "", "XYZ", "20240101"]))
def test_garbage_in_any_report_type_never_raises(kind: str, fields: list[str], count: str) -> None:
    frame = ",".join([f"+RESP:{kind}", "060228", IMEI] + fields + [count]).encode() + b"$"
    for actions in (Gv50StreamCodec().receive(frame, NOW), Gv50DatagramCodec().receive_datagram(frame, NOW)):
        for action in actions:
            assert isinstance(action, (Identified, Store, Flagged, Rejected))


def test_waygps_decode_shows_every_family_report_with_its_position(tmp_path: Any, capsys: Any) -> None:
    from waygps.cli.main import main

    names = sorted(CASES)
    capture = tmp_path / "fleet.hex"
    capture.write_text("".join(CASES[name][0].encode().hex() + "\n" for name in names))
    assert main(["decode", "--driver", "gv50", "--hex", "--now", NOW.isoformat(), str(capture)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    positions = [line for line in lines if line["type"] == "position"]
    assert [p["event"] for p in positions] == names  # one position per report, in capture order
    for name, p in zip(names, positions):
        lat, lon = CASES[name][1][0][:2]
        assert (p["latitude"], p["longitude"]) == (lat, lon), name
    assert "note (missing_protocol_version)" in err  # GTTRI's variant is shown, not hidden
