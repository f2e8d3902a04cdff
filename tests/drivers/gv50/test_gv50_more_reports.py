"""Report types the protocol document lists without a sample (§3.3, §3.4, §3.7, §3.8), built from
its layouts and hand-checked; oversized numeric fields; the codec modules' imports; and
`waygps decode --driver gv50` on every sample of the document."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bson
import pytest

from gv50_vectors import FRAMES
from test_gv50_samples import EXPECTED
from waygps.actions import Flagged, Identified, Rejected, Store
from waygps.cli.main import main
from waygps.documents import position_document
from waygps.drivers.gv50.codec import Gv50DatagramCodec, Gv50StreamCodec
from waygps.events import Alarm, Position

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"
# One position block (§2.4): accuracy 1, 95.3 km/h, 147°, 329.7 m, S1's coordinates, fix time, cell, "00".
BLOCK = "1,95.3,147,329.7,-62.899703,-17.720434,20160309113548,0736,0003,6AAE,3381,00"
TRAILER = "20160309073554"  # send time; the count follows


def frame(body: str, count: str) -> bytes:
    return f"{body},{TRAILER},{count}$".encode()


def decoded(data: bytes) -> tuple[list[Position], list[Alarm], Store]:
    actions = Gv50StreamCodec().receive(data, NOW)
    assert actions[0] == Identified(IMEI)
    assert not [a for a in actions if isinstance(a, (Rejected, Flagged))]
    (store,) = [a for a in actions if isinstance(a, Store)]
    assert store.ack == b"+SACK:" + data.rstrip(b"$").rsplit(b",", 1)[1] + b"$"
    positions = [e for e in store.events if isinstance(e, Position)]
    alarms = [e for e in store.events if isinstance(e, Alarm)]
    assert Gv50DatagramCodec().receive_datagram(data, NOW) == actions
    return positions, alarms, store


# (frame, event, ignition, attributes of the position, alarm name, alarm message)
GENERIC_LAYOUT = f"060228,{IMEI},,,{{report}},1,{BLOCK},913.3"  # §3.3: reserved, report byte, N, block, mileage
CASES = [
    (frame(f"+RESP:GTSPD,{GENERIC_LAYOUT.format(report='00')}", "1A01"), "GTSPD", None,
     dict(report_id=0, report_type=0, mileage_km=913.3), "overspeed", "speed outside the configured range"),
    (frame(f"+RESP:GTSPD,{GENERIC_LAYOUT.format(report='01')}", "1A02"), "GTSPD", None,
     dict(report_id=0, report_type=1), None, None),  # back inside the speed range: no alarm
    (frame(f"+RESP:GTGEO,{GENERIC_LAYOUT.format(report='31')}", "1A03"), "GTGEO", None,
     dict(report_id=3, report_type=1), "geofence_enter", "geofence 3 entered"),
    (frame(f"+RESP:GTGEO,{GENERIC_LAYOUT.format(report='30')}", "1A04"), "GTGEO", None,
     dict(report_id=3, report_type=0), "geofence_exit", "geofence 3 left"),
    (frame(f"+RESP:GTTOW,{GENERIC_LAYOUT.format(report='10')}", "1A05"), "GTTOW", None,
     dict(mileage_km=913.3), "tow", "vehicle towed"),
    (frame(f"+RESP:GTDIS,{GENERIC_LAYOUT.format(report='21')}", "1A06"), "GTDIS", None,
     dict(report_id=2, report_type=1), None, None),
    (frame(f"+RESP:GTVGL,{GENERIC_LAYOUT.format(report='00')}", "1A07"), "GTVGL", True,
     dict(report_type=0), None, None),  # virtual ignition, type 0 = on (§3.13)
    (frame(f"+RESP:GTVGL,{GENERIC_LAYOUT.format(report='01')}", "1A08"), "GTVGL", False,
     dict(report_type=1), None, None),
    # §3.4: duration of the previous state, block, hour meter, mileage
    (frame(f"+RESP:GTVGN,060228,{IMEI},,100,{BLOCK},00012:30:00,913.3", "1A09"), "GTVGN", True,
     dict(previous_state_seconds=100, hour_meter="00012:30:00", mileage_km=913.3), None, None),
    (frame(f"+BUFF:GTVGF,060228,{IMEI},,200,{BLOCK},,913.3", "1A0A"), "GTVGF", False,
     dict(previous_state_seconds=200, mileage_km=913.3), None, None),
    # §3.7: the block at 4
    (frame(f"+RESP:GTMPF,060228,{IMEI},,{BLOCK}", "1A0B"), "GTMPF", None,
     dict(mcc=736, mnc=3, lac=0x6AAE, cell_id=0x3381), "power_cut", "main power disconnected"),
    (frame(f"+RESP:GTEPF,060228,{IMEI},,{BLOCK}", "1A0C"), "GTEPF", None, dict(gps_accuracy=1),
     "power_cut", "main power disconnected"),
    (frame(f"+RESP:GTJDR,060228,{IMEI},,{BLOCK}", "1A0D"), "GTJDR", None, dict(gps_accuracy=1),
     "jamming", "GSM jamming detected"),
    (frame(f"+RESP:GTEPN,060228,{IMEI},,{BLOCK}", "1A0E"), "GTEPN", None, dict(gps_accuracy=1), None, None),
]


@pytest.mark.parametrize("data, event, ignition, attributes, alarm, message", CASES,
                         ids=[f"{c[1]}-{c[0][-5:-1].decode()}" for c in CASES])
def test_report_type_without_a_sample(data: bytes, event: str, ignition: bool | None, attributes: dict[str, Any],
                                      alarm: str | None, message: str | None) -> None:
    (position,), alarms, _ = decoded(data)
    assert (position.imei, position.event, position.ignition) == (IMEI, event, ignition)
    assert (position.latitude, position.longitude, position.speed, position.course, position.altitude) == (
        -17.720434, -62.899703, 95.3, 147.0, 329.7)
    assert position.device_time == datetime(2016, 3, 9, 11, 35, 48, tzinfo=timezone.utc)
    assert position.valid is True and position.hdop == 1.0
    assert position.buffered is data.startswith(b"+BUFF")
    assert {key: position.attributes.get(key) for key in attributes} == attributes
    assert [(a.alarm, a.message, a.position_id) for a in alarms] == (
        [(alarm, message, position.document_id)] if alarm else [])


def test_gtpdp_is_an_event_without_a_position() -> None:
    (position,), alarms, _ = decoded(frame(f"+RESP:GTPDP,060228,{IMEI},", "1A0F"))
    assert position.event == "GTPDP" and position.latitude is None and position.valid is False
    assert position.device_time == NOW and position.attributes["time_source"] == "server"
    assert alarms == []


def test_gtfri_power_voltage_hour_meter_and_analog_input() -> None:
    data = frame(f"+RESP:GTFRI,060228,{IMEI},,12400,10,1,{BLOCK},913.3,00123:45:10,3300,,88,220101,,,", "1A10")
    for fast in (True, False):
        codec = Gv50StreamCodec()
        codec.use_fast_path = fast
        codec.receive(FRAMES["S1"], NOW)  # identified: the second frame may take the GTFRI shortcut
        (store,) = codec.receive(data, NOW)
        (position,) = store.events
        assert {k: position.attributes.get(k) for k in (
            "power", "hour_meter", "analog_input_mv", "battery", "mileage_km")} == {
            "power": 12.4, "hour_meter": "00123:45:10", "analog_input_mv": 3300, "battery": 88,
            "mileage_km": 913.3}
        assert position.ignition is True and position.attributes["output_1"] is True


# --- numbers too large for any field ----------------------------------------------------------

HUGE = ["9" * 19, "9" * 400, "F" * 30]


def _all_events(actions: list[Any]) -> list[Any]:
    return [e for a in actions if isinstance(a, Store) for e in a.events]


@pytest.mark.parametrize("name", ["S1", "S4", "S16", "S21", "S32"])
def test_oversized_numbers_never_raise_and_every_report_fits_bson(name: str) -> None:
    """A field holding a huge number is dropped (attribute) or drops its block, never crashes the codec,
    and never yields a document MongoDB cannot store (it would be refused and re-sent forever)."""
    fields = FRAMES[name].rstrip(b"$").decode().split(",")
    imei = fields[2]
    for index in range(4, len(fields) - 2):
        for value in HUGE:
            changed = ",".join(fields[:index] + [value] + fields[index + 1:]).encode() + b"$"
            outcomes = []
            for fast in (True, False):
                codec = Gv50StreamCodec()
                codec.use_fast_path = fast
                outcomes.append(codec.receive(changed + changed, NOW))
            assert outcomes[0] == outcomes[1], (index, value[:4])
            for event in _all_events(outcomes[0]):
                assert event.imei == imei
                if isinstance(event, Position):
                    bson.encode(position_document(event))
                    for key, attribute in event.attributes.items():
                        assert not isinstance(attribute, int) or -(2**63) <= attribute < 2**63, key


def test_huge_power_field_is_left_out() -> None:
    data = frame(f"+RESP:GTFRI,060228,{IMEI},,{'9' * 400},10,1,{BLOCK},913.3,,,,0,220101,,,", "1A11")
    (store,) = [a for a in Gv50StreamCodec().receive(data, NOW) if isinstance(a, Store)]
    (position,) = store.events
    assert "power" not in position.attributes and position.latitude == -17.720434


@pytest.mark.parametrize("accuracy", ["9" * 20, "1000", "-1"])
def test_impossible_gps_accuracy_drops_the_block(accuracy: str) -> None:
    data = frame(f"+RESP:GTFRI,060228,{IMEI},,,10,1,{accuracy}{BLOCK[1:]},913.3,,,,0,220101,,,", "1A12")
    actions = Gv50StreamCodec().receive(data, NOW)
    assert [a.reason for a in actions if isinstance(a, Rejected)] == ["invalid_position"]
    (store,) = [a for a in actions if isinstance(a, Store)]
    assert store.ack == b"+SACK:1A12$" and [type(e).__name__ for e in store.events] == ["Heartbeat"]


# --- structure ------------------------------------------------------------------------------------


def test_codec_modules_import_nothing_from_twisted() -> None:
    import waygps.drivers.gv50.codec as codec_module

    folder = Path(codec_module.__file__).parent
    for path in sorted(folder.glob("*.py")):
        if path.name == "driver.py":  # the plugin module names the codec; it may use the adapter
            continue
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[0] == "twisted" or m == "waygps.drivers.base"], path.name


# --- `waygps decode --driver gv50` on every sample of the document ------------------------------------


def test_decode_cli_gives_the_documented_values_for_every_sample(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(EXPECTED, key=lambda n: int(n[1:]))
    capture = tmp_path / "samples.hex"
    capture.write_text("".join(FRAMES[n].hex() + "\n" for n in names))
    code = main(["decode", "--driver", "gv50", "--hex", "--now", NOW.isoformat(), str(capture)])
    out, err = capsys.readouterr()
    assert code == 0, err  # no sample is rejected (Luhn notes are not rejections)
    printed = [json.loads(line) for line in out.splitlines()]
    for number, name in enumerate(names, 1):
        imei, event, buffered, positions, _, alarm = EXPECTED[name]
        mine = [p for p in printed if p["capture"] == number]
        got = [p for p in mine if p["type"] == "position"]
        assert [p["type"] for p in mine if p["type"] != "position"] == (["alarm"] if alarm else []), name
        assert len(got) == len(positions), name
        for line, want in zip(got, positions):
            assert (line["IMEI"], line["event"], line["attributes"].get("buffered", False)) == (
                imei, event, buffered), name
            assert (line["latitude"], line["longitude"], line["speed"], line["course"], line["altitude"]) == (
                want["latitude"], want["longitude"], want["speed"], want["course"], want["altitude"]), name
            assert (line["valid"], line["ignicao"], line["hdop"]) == (
                want["valid"], want["ignition"], want["hdop"]), name
            assert line["dataDevice"] == want["device_time"].isoformat().replace("+00:00", "Z"), name
    heartbeat = FRAMES["S33"] + b"\n" + FRAMES["X1"].replace(b"-90.366478,38.735379", b",") + b"\n"
    capture.write_bytes(heartbeat)
    code = main(["decode", "--driver", "gv50", "--now", NOW.isoformat(), str(capture)])
    out, err = capsys.readouterr()
    assert code == 1 and "rejected (bad_count)" in err  # X1 without a fix goes to stderr with its reason
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["heartbeat"]
