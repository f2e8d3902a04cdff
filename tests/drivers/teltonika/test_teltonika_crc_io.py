"""CRC-16/IBM (compiled and pure-Python agree) and the IO table (naming, scaling, fallbacks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teltonika_vectors import TV, tv
from waygps.drivers.teltonika import crc as crc_module
from waygps.drivers.teltonika.avl import CODEC_8, CODEC_8E, make_record
from waygps.drivers.teltonika.io_table import NAMES, TABLE, IoSpec, X, build
from waygps.drivers.teltonika.reports import io_attributes


def test_check_value() -> None:
    assert crc_module.crc16(b"123456789") == 0xBB3D
    assert crc_module.crc16_python(b"123456789") == 0xBB3D
    assert crc_module.crc16(b"") == 0 == crc_module.crc16_python(b"")


def test_anycrc_is_used_when_installed() -> None:
    if importlib.util.find_spec("anycrc") is None:
        pytest.skip("anycrc is not installed here (the extra waygps[fast]); the Python CRC is in use")
    assert crc_module.IMPLEMENTATION == "anycrc"


@settings(deadline=None)
@given(st.binary(max_size=2048))
def test_compiled_and_python_crc_agree(data: bytes) -> None:
    assert crc_module.crc16(data) == crc_module.crc16_python(data)


@pytest.mark.parametrize("name", [n for n in TV if n not in ("TV-01", "TV-12", "TV-13", "TV-14")])
def test_both_crcs_check_every_tcp_vector(name: str) -> None:
    frame = tv(name)
    stored = int.from_bytes(frame[-4:], "big")
    assert crc_module.crc16(frame[8:-4]) == stored == crc_module.crc16_python(frame[8:-4])


def test_fallback_without_anycrc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anycrc", None)  # import anycrc -> ImportError
    spec = importlib.util.spec_from_file_location("crc_without_anycrc", Path(crc_module.__file__))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.IMPLEMENTATION == "python" and module.crc16 is module.crc16_python
    assert module.crc16(tv("TV-02")[8:-4]) == 0xC7CF


def test_table_has_the_required_elements() -> None:
    required = {
        239: "ignition",
        240: "movement",
        21: "gsm_signal",
        69: "gnss_status",
        66: "power",
        67: "batteryVoltage",
        113: "battery",
        68: "battery_current",
        16: "odometer",
        199: "trip_odometer",
        181: "pdop",
        182: "hdop",
        1: "din1",
        2: "din2",
        3: "din3",
        179: "dout1",
        180: "dout2",
        24: "gnss_speed",
        78: "ibutton",
    }
    by_id = {spec.id: spec.name for spec in TABLE}
    assert {i: by_id.get(i) for i in required} == required
    assert len({spec.name for spec in TABLE}) == len(TABLE)


def test_build_refuses_bad_rows() -> None:
    with pytest.raises(ValueError):
        build((IoSpec(1, "a", 3),))
    with pytest.raises(ValueError):
        build((IoSpec(1, "a", 1), IoSpec(1, "b", 1)))
    assert build((IoSpec(1, "a", 1), IoSpec(1, "b", 2)))[2][1][0] == "b"  # same ID, other size: allowed


def test_conversions() -> None:
    record = make_record(
        1_700_000_000_000,
        io={
            1: {239: 1, 240: 0, 32: 0xF6, 250: 1},
            2: {17: 0xFFFF, 182: 12, 181: 25, 66: 12345, 25: 0xFC18},
            4: {72: 0xFFFFFF9C, 16: 123456, 83: 55},
            8: {78: 0x0102030405060708, 11: 89370123456789012345 % (1 << 64), 4000 % 256: (1 << 64) - 1},
        },
    )
    a = io_attributes(record)
    assert a["ignition"] is True and a["movement"] is False and a["trip"] == 1
    assert a["obd_coolant_temp"] == -10 and a["axis_x"] == -1 and a["ble_temp1"] == -10.0
    assert a["hdop"] == 1.2 and a["pdop"] == 2.5 and a["power"] == 12.345
    assert a["dallas_temp1"] == -10.0 and a["odometer"] == 123456 and a["can_fuel_consumed"] == 5.5
    assert a["ibutton"] == "0102030405060708" and a["iccid1"] == str(89370123456789012345 % (1 << 64))
    assert a["io160"] == str((1 << 64) - 1)  # above int64: kept as decimal text
    small = io_attributes(make_record(0, io={8: {161: 5}}))
    assert small["io161"] == 5


def test_size_mismatch_and_unknown_ids_stay_raw() -> None:
    a = io_attributes(make_record(0, io={1: {66: 7, 200: 1}, 4: {239: 1, 9999 % 256: 3}}))
    assert a == {"io66": 7, "sleep_mode": 1, "io239": 1, "io15": 3}


def test_nx_elements() -> None:
    a = io_attributes(make_record(0, nx=[(256, b"VIN\xff"), (999, b"\x01\x02"), (385, b"\xab")]))
    assert a == {"vin": "VIN\\xff", "io999": "0102", "beacons": "ab"}


def test_position_fields_from_io() -> None:
    from teltonika_vectors import NOW
    from waygps.drivers.teltonika.reports import records_events

    record = make_record(1_700_000_000_000, satellites=4, io={1: {239: 0}, 2: {182: 9}})
    (position,) = records_events([record], CODEC_8E, "356307042441013", NOW)
    assert position.ignition is False and position.hdop == 0.9 and position.valid
    no_io = records_events([make_record(1_700_000_000_000)], CODEC_8, "356307042441013", NOW)[0]
    assert no_io.ignition is None and no_io.hdop is None


def test_names_cover_every_size() -> None:
    assert set(NAMES) == {1, 2, 4, 8, X}


def test_codec_modules_import_nothing_from_twisted() -> None:
    import ast
    from pathlib import Path

    import waygps.drivers.teltonika.codec as codec_module

    for path in sorted(Path(codec_module.__file__).parent.glob("*.py")):
        if path.name == "driver.py":  # the plugin module names the codecs for the adapter
            continue
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[0] == "twisted" or m == "waygps.drivers.base"], path.name
