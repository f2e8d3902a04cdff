"""The generic driver's formats: every format, every alias, every rejection reason."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from waygps.documents import position_document
from waygps.drivers.generic import formats
from waygps.drivers.generic.formats import ReportError, Settings, parse_line, to_positions

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
EPOCH = 1714564800  # 2024-05-01T12:00:00Z


def nmea(body: str) -> str:
    checksum = 0
    for char in body.encode():
        checksum ^= char
    return f"${body}*{checksum:02X}"


def decode(line: str, now: datetime = NOW, **settings):
    return to_positions(parse_line(line), now, Settings(**settings))


def one(line: str, **settings):
    device, positions = decode(line, **settings)
    assert len(positions) == 1
    return positions[0]


def reason(line: str, now: datetime = NOW, **settings) -> str:
    with pytest.raises(ReportError) as raised:
        decode(line, now, **settings)
    return raised.value.reason


# --- the three line formats ----------------------------------------------------------


def test_seed_key_value_line():
    p = one("IMEI: 123456789012345, LAT: -34.603722, LON: -58.381592, SPD: 45, HDG: 180")
    assert (p.imei, p.latitude, p.longitude, p.speed, p.course) == ("123456789012345", -34.603722, -58.381592,
                                                                    45.0, 180.0)
    assert p.protocol == "generic" and p.valid and p.event == "position"
    assert p.attributes == {"format": "text", "time_source": "server"}
    assert p.device_time == NOW and p.server_time == NOW
    assert p.raw == "IMEI: 123456789012345, LAT: -34.603722, LON: -58.381592, SPD: 45, HDG: 180"


@pytest.mark.parametrize("line", [
    "id=dev-1;lat=10.5;lon=-20.25;speed=12",
    "id=dev-1&lat=10.5&lon=-20.25&speed=12",
    "ID = dev-1 , Lat = 10.5 , LON = -20.25 , Speed = 12",
    "id:dev-1;lat:10.5&lon=-20.25,speed: 12",
])
def test_key_value_separators(line):
    p = one(line)
    assert (p.imei, p.latitude, p.longitude, p.speed) == ("dev-1", 10.5, -20.25, 12.0)


def test_key_value_time_with_colons():
    p = one("id=a,lat=1,lon=2,time=2024-05-01T11:30:15Z")
    assert p.device_time == datetime(2024, 5, 1, 11, 30, 15, tzinfo=timezone.utc)
    p = one("id: a, lat: 1, lon: 2, time: 2024-05-01T11:30:15+02:00")
    assert p.device_time == datetime(2024, 5, 1, 9, 30, 15, tzinfo=timezone.utc)


def test_json_line_every_named_field():
    p = one('{"imei": "356307042441013", "lat": -34.6, "lon": -58.38, "speed": 45.5, "course": 90, "alt": 25,'
            ' "time": "2024-05-01T11:59:00Z", "ignition": true}')
    assert p.imei == "356307042441013"
    assert (p.latitude, p.longitude, p.speed, p.course, p.altitude, p.ignition) == (-34.6, -58.38, 45.5, 90.0,
                                                                                    25.0, True)
    assert p.device_time == datetime(2024, 5, 1, 11, 59, tzinfo=timezone.utc)
    assert p.attributes == {"format": "json"}


def test_json_numeric_id_and_array_of_reports():
    device, positions = decode('[{"id": 123456789012345, "lat": 1, "lon": 2, "time": 1714564000},'
                               ' {"id": "123456789012345", "lat": 1.1, "lon": 2.1, "time": 1714564060}]')
    assert device == "123456789012345"
    assert [p.latitude for p in positions] == [1.0, 1.1]
    assert positions[0].raw == '{"id":123456789012345,"lat":1,"lon":2,"time":1714564000}'
    assert positions[0].key != positions[1].key


def test_traccar_client_json_body():
    body = ('{"device_id": "phone-7", "location": {"timestamp": "2024-05-01T11:58:00.000Z",'
            ' "coords": {"latitude": -34.6, "longitude": -58.4, "speed": 10, "heading": 270,'
            ' "altitude": 30, "accuracy": 5}, "is_moving": true, "odometer": 1200.5,'
            ' "battery": {"level": 0.85, "is_charging": false}, "activity": {"type": "in_vehicle"},'
            ' "extras": {"note": "x"}}}')
    p = one(body)
    assert p.imei == "phone-7"
    assert (p.latitude, p.longitude, p.course, p.altitude) == (-34.6, -58.4, 270.0, 30.0)
    assert p.speed == 36.0  # m/s in this format, whatever the listener's unit
    assert p.device_time == datetime(2024, 5, 1, 11, 58, tzinfo=timezone.utc)
    assert p.attributes == {"accuracy": 5, "is_moving": True, "odometer": 1200.5, "battery": 85.0,
                            "charging": False, "activity": "in_vehicle", "note": "x", "format": "json"}


def test_traccar_client_unknown_speed_and_heading_are_left_out():
    p = one('{"device_id": "p", "location": {"timestamp": "2024-05-01T11:58:00Z",'
            ' "coords": {"latitude": 1, "longitude": 2, "speed": -1, "heading": -1}}}')
    assert p.speed is None and p.course is None


def test_nmea_rmc_with_device_id():
    p = one("dev9," + nmea("GNRMC,083559.00,A,3436.22332,S,05822.89552,W,10.0,77.52,010524,,,A"))
    assert p.imei == "dev9" and p.valid
    assert p.latitude == pytest.approx(-(34 + 36.22332 / 60))
    assert p.longitude == pytest.approx(-(58 + 22.89552 / 60))
    assert p.speed == 18.52  # knots always
    assert p.course == 77.52
    assert p.device_time == datetime(2024, 5, 1, 8, 35, 59, tzinfo=timezone.utc)
    assert p.attributes == {"format": "nmea"}


def test_nmea_gprmc_lowercase_checksum_and_north_east():
    sentence = nmea("GPRMC,101010,A,4807.038,N,01131.000,E,0.0,,300424,003.1,W")
    p = one("abc," + sentence[:-2] + sentence[-2:].lower())
    assert p.latitude == pytest.approx(48.1173) and p.longitude == pytest.approx(11.516666, abs=1e-6)
    assert p.course is None and p.speed == 0.0


def test_nmea_published_example_passes_its_checksum():
    # The textbook sentence (checksum 6A as published); its date 23/03/94 reads as 2094.
    line = "x,$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
    assert reason(line) == "time_in_future"
    assert reason(line.replace("*6A", "*6B")) == "bad_checksum"


def test_nmea_void_fix_is_stored_flagged():
    p = one("dev9," + nmea("GPRMC,083600.00,V,,,,,,,010524,,,N"))
    assert not p.valid and p.latitude is None and p.longitude is None
    assert "location" not in position_document(p)
    p = one("dev9," + nmea("GPRMC,083600.00,A,3436.22332,S,05822.89552,W,0,0,010524,,,N"))
    assert not p.valid and p.latitude is not None  # mode N: data not valid


# --- aliases -----------------------------------------------------------------------------------

ALIAS_CASES = [(alias, canonical) for canonical, aliases in formats.ALIASES.items() for alias in aliases]


@pytest.mark.parametrize("alias,canonical", ALIAS_CASES)
def test_every_alias_in_key_value_and_json(alias, canonical):
    values = {"id": "dev1", "lat": "-34.5", "lon": "-58.5", "speed": "40", "course": "180", "alt": "12",
              "time": "2024-05-01T10:00:00Z", "ignition": "1", "battery": "77", "valid": "true",
              "event": "sos", "satellites": "7", "hdop": "0.9", "batteryVoltage": "3.9"}
    fields = dict(values)
    del fields[canonical]
    base = ",".join(f"{k}={v}" for k, v in fields.items())
    as_json = json.dumps({**fields, alias: values[canonical]})
    for line in (f"{base},{alias.upper()}={values[canonical]}", as_json):
        p = one(line)
        assert (p.imei, p.latitude, p.longitude) == ("dev1", -34.5, -58.5)
        assert (p.speed, p.course, p.altitude) == (40.0, 180.0, 12.0)
        assert p.device_time == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
        assert (p.ignition, p.valid, p.event, p.satellites, p.hdop) == (True, True, "sos", 7, 0.9)
        assert (p.attributes["battery"], p.attributes["batteryVoltage"]) == (77.0, 3.9)
        assert set(p.attributes) == {"battery", "batteryVoltage", "format"}


def test_battery_is_a_percentage_and_a_voltage_has_its_own_name():
    # One meaning per name across drivers: a "battery" outside 0-100 is not stored as a percentage.
    p = one("id=dev1,lat=-34.5,lon=-58.5,battery=412")
    assert "battery" not in p.attributes and p.attributes["battery_unknown_unit"] == 412.0
    p = one("id=dev1,lat=-34.5,lon=-58.5,vbat=4.12,batt=88")
    assert (p.attributes["battery"], p.attributes["batteryVoltage"]) == (88.0, 4.12)


@pytest.mark.parametrize("name", ["Device-ID", "device id", "IGNICIÓN", "Ignición", "BATERÍA",
                                  "Velocidad"])
def test_names_fold_case_separators_and_accents(name):
    assert formats.fold(name) in {"deviceid", "ignicion", "bateria", "velocidad"}


@pytest.mark.parametrize("unit,expected", [("kmh", 10.0), ("knots", 18.52), ("ms", 36.0)])
def test_speed_unit(unit, expected):
    assert one("id=a,lat=1,lon=2,speed=10", speed_unit=unit).speed == expected


@pytest.mark.parametrize("text,value", [("1", True), ("0", False), ("on", True), ("OFF", False),
                                        ("true", True), ("false", False), ("yes", True), ("no", False),
                                        ("si", True)])
def test_ignition_words(text, value):
    assert one(f"id=a,lat=1,lon=2,ign={text}").ignition is value


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    str(EPOCH - 60), str((EPOCH - 60) * 1000), f"{EPOCH - 60}.0", "2024-05-01T11:59:00Z",
    "2024-05-01T11:59:00", "2024-05-01 11:59:00", "2024-05-01T08:59:00-03:00", "2024-05-01T14:59:00 03:00",
    "2024-05-01T11:59:00.000000000Z",
])
def test_time_forms(value):
    assert one(f"id=a;lat=1;lon=2;time={value}").device_time == datetime(2024, 5, 1, 11, 59,
                                                                         tzinfo=timezone.utc)


def test_json_number_times():
    assert one(f'{{"id": "a", "lat": 1, "lon": 2, "timestamp": {EPOCH * 1000 - 1500}}}').device_time == \
        datetime(2024, 5, 1, 11, 59, 58, 500000, tzinfo=timezone.utc)


def test_time_up_to_24_hours_ahead_is_accepted():
    assert one(f"id=a,lat=1,lon=2,time={EPOCH + 86400}").device_time == NOW + timedelta(hours=24)


# --- rejections, each with its reason ----------------------------------------------------

REJECTIONS = [
    ("", "empty"),
    ("hello world", "unknown_format"),
    ("id=a,lat=1,lon=2,garbage", "unknown_format"),
    ("=1,lat=2", "unknown_format"),
    ("{not json", "bad_json"),
    ('{"id": "a", "lat": NaN, "lon": 1}', "bad_json"),
    ("[]", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('{"device_id": "a", "location": []}', "bad_json"),
    ("lat=1,lon=2", "missing_id"),
    ("id=,lat=1,lon=2", "missing_id"),
    ("id=has space,lat=1,lon=2", "bad_id"),
    ("id=" + "x" * 41 + ",lat=1,lon=2", "bad_id"),
    ("id=a/b,lat=1,lon=2", "bad_id"),
    ('{"id": true, "lat": 1, "lon": 2}', "bad_id"),
    ('{"id": 1.5, "lat": 1, "lon": 2}', "bad_id"),
    ("id=a,lon=2", "missing_lat"),
    ("id=a,lat=1", "missing_lon"),
    ("id=a,lat=90.0001,lon=2", "lat_out_of_range"),
    ("id=a,lat=-91,lon=2", "lat_out_of_range"),
    ("id=a,lat=1,lon=180.5", "lon_out_of_range"),
    ("id=a,lat=1,lon=-181", "lon_out_of_range"),
    ("id=a,lat=north,lon=2", "bad_lat"),
    ("id=a,lat=1,lon=nan", "bad_lon"),
    ('{"id": "a", "lat": "inf", "lon": 1}', "bad_lat"),
    ('{"id": "a", "lat": 1e999, "lon": 1}', "bad_lat"),
    ('{"id": "a", "lat": true, "lon": 1}', "bad_lat"),
    ("id=a,lat=1,lon=2,speed=fast", "bad_speed"),
    ("id=a,lat=1,lon=2,speed=-3", "bad_speed"),
    ("id=a,lat=1,lon=2,hdg=north", "bad_course"),
    ("id=a,lat=1,lon=2,hdg=361", "bad_course"),
    ("id=a,lat=1,lon=2,alt=high", "bad_alt"),
    ("id=a,lat=1,lon=2,ign=maybe", "bad_ignition"),
    ("id=a,lat=1,lon=2,batt=full", "bad_battery"),
    ("id=a,lat=1,lon=2,valid=perhaps", "bad_valid"),
    ("id=a,lat=1,lon=2,sats=2.5", "bad_satellites"),
    ("id=a,lat=1,lon=2,hdop=-1", "bad_hdop"),
    ('{"id": "a", "lat": 1, "lon": 2, "event": {"x": 1}}', "bad_event"),
    ("id=a,lat=1,lon=2,time=yesterday", "bad_time"),
    ("id=a,lat=1,lon=2,time=0", "bad_time"),
    ("id=a,lat=1,lon=2,time=1999-12-31T23:59:59Z", "bad_time"),
    (f"id=a,lat=1,lon=2,time={EPOCH + 86401}", "time_in_future"),
    (f"id=a,lat=1,lon=2,time={(EPOCH + 86401) * 1000}", "time_in_future"),
    ("id=a,lat=1,lon=2,time=2024-05-02T12:00:01Z", "time_in_future"),
    ("id=a,lat=1,lon=2,time=1e300", "time_in_future"),
    ("id=a,lat=1,latitude=3,lon=2", "conflicting_fields"),
    ('[{"id": "a", "lat": 1, "lon": 2}, {"id": "b", "lat": 1, "lon": 2}]', "mixed_devices"),
    ("id=a,lat=1,lon=2," + ",".join(f"k{i}={i}" for i in range(101)), "too_many_fields"),
    ("a,$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W", "missing_checksum"),
    ("a,$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W*ZZ", "bad_checksum"),
    ("a,$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W*00", "bad_checksum"),
    ("a," + nmea("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "unsupported_sentence"),
    ("a," + nmea("GPRMC,123519,A,4807.038,N"), "bad_nmea"),
    ("a," + nmea("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W"), "bad_nmea"),
    ("a," + nmea("GPRMC,123519,A,4807.038,Q,01131.000,E,022.4,084.4,230324,003.1,W"), "bad_lat"),
    ("a," + nmea("GPRMC,123519,A,4867.038,N,01131.000,E,022.4,084.4,230324,003.1,W"), "bad_lat"),
    ("a," + nmea("GPRMC,123519,A,4807.038,N,1131.000,E,022.4,084.4,230324,003.1,W"), "bad_lon"),
    ("a," + nmea("GPRMC,126019,A,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W"), "bad_time"),
    ("a," + nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320324,003.1,W"), "bad_time"),
    (nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230324,003.1,W"), "missing_id"),
    ("a," + nmea("GPRMC,123519,A,4807.038,N,01131.000,E,fast,084.4,230324,003.1,W"), "bad_speed"),
]


@pytest.mark.parametrize("line,expected", REJECTIONS, ids=[r for _, r in REJECTIONS])
def test_rejection_reason(line, expected):
    assert reason(line) == expected


def test_every_reason_is_a_short_label():
    for _, expected in REJECTIONS:
        assert expected.replace("_", "").isalpha() and len(expected) <= 24


# --- keys: the same report maps to the same _id --------------------------------------------


def test_key_depends_on_time_place_and_event_only():
    a = one("id=a,lat=1,lon=2,time=2024-05-01T10:00:00Z,speed=5")
    same = one('{"id": "a", "lat": 1.0, "lon": 2, "time": "2024-05-01T10:00:00Z", "speed": 5}')
    later = one("id=a,lat=1,lon=2,time=2024-05-01T10:00:01Z,speed=5")
    elsewhere = one("id=a,lat=1.00001,lon=2,time=2024-05-01T10:00:00Z,speed=5")
    alarm = one("id=a,lat=1,lon=2,time=2024-05-01T10:00:00Z,speed=5,event=sos")
    other_device = one("id=b,lat=1,lon=2,time=2024-05-01T10:00:00Z,speed=5")
    assert a.document_id == same.document_id
    ids = {p.document_id for p in (a, later, elsewhere, alarm, other_device)}
    assert len(ids) == 5


def test_server_time_reports_resent_within_the_window_keep_their_id():
    line = "id=a,lat=1,lon=2,speed=5"
    first = one(line)
    resent = to_positions(parse_line(line), NOW + timedelta(seconds=59), Settings())[1][0]
    assert resent.document_id == first.document_id
    assert resent.attributes["time_source"] == "server"
    next_window = to_positions(parse_line(line), NOW + timedelta(seconds=60), Settings())[1][0]
    assert next_window.document_id != first.document_id
    moved = one("id=a,lat=1,lon=2,speed=6")
    assert moved.document_id != first.document_id


def test_server_time_window_zero_makes_every_receipt_new():
    settings = Settings(server_time_window=0)
    first = to_positions(parse_line("id=a,lat=1,lon=2"), NOW, settings)[1][0]
    second = to_positions(parse_line("id=a,lat=1,lon=2"), NOW + timedelta(milliseconds=1), settings)[1][0]
    assert first.document_id != second.document_id


def test_sender_cannot_fake_time_source():
    p = one("id=a,lat=1,lon=2,time=2024-05-01T10:00:00Z,time_source=server,format=mine")
    assert "time_source" not in p.attributes and p.attributes["format"] == "text"


# --- attributes ------------------------------------------------------------------------------


def test_unknown_keys_become_attributes_under_safe_names():
    p = one('{"id": "a", "lat": 1, "lon": 2, "Temp.C": 21.5, "$where": "x", "Nested": {"a.b": [1, 2]},'
            ' "big": 123456789012345678901234567890, "text": "\\ud800", "_": 1}')
    assert p.attributes == {"temp_c": 21.5, "where": "x", "nested": {"a_b": [1, 2]},
                            "big": "123456789012345678901234567890", "text": "?", "format": "json",
                            "time_source": "server"}
    position_document(p)  # BSON-safe values only


def test_text_values_that_are_plain_numbers_become_numbers():
    p = one("id=a,lat=1,lon=2,temp=21.5,count=12,phone=+5491122334455,code=007,word=abc,exp=1e5")
    assert p.attributes == {"temp": 21.5, "count": 12, "phone": "+5491122334455", "code": "007",
                            "word": "abc", "exp": "1e5", "format": "text", "time_source": "server"}


def test_deep_nesting_is_flattened_to_text():
    p = one('{"id": "a", "lat": 1, "lon": 2, "x": {"y": {"z": {"w": {"v": 1}}}}}')
    assert p.attributes["x"] == {"y": {"z": {"w": '{"v":1}'}}}
