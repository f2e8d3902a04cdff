"""`waygps device add|list` against the real embedded store (pymongo)."""

from __future__ import annotations

import argparse
import io
import socket
from typing import Any

import pymongo
import pytest

from waygps.cli import device
from waygps.config import Collections, Config, EmbeddedConfig, MongoConfig

IMEI = "862894020180553"  # check digit valid
BAD_LUHN = "862894020180554"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="waygps device")
    device.add_arguments(parser)
    return parser.parse_args(argv)


def run(config: Config, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = device.run(parse(*argv), config, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def config(mongo_uri: str, mongo_db_name: str) -> Config:
    return Config(mongodb=MongoConfig(uri=mongo_uri, database=mongo_db_name,
                                      collections=Collections(vehicles="Veiculo")))


@pytest.fixture
def vehicles(mongo_uri: str, mongo_db_name: str) -> Any:
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    yield client[mongo_db_name]["Veiculo"]
    client.close()


@pytest.mark.integration
def test_add_then_update_then_list(config: Config, vehicles: Any) -> None:
    assert run(config, "add", IMEI, "--plate", "ABC1234") == (0, f"{IMEI}: added\n", "")
    assert run(config, "add", IMEI) == (0, f"{IMEI}: unchanged\n", "")
    assert run(config, "add", IMEI, "--model", "GV50") == (0, f"{IMEI}: updated\n", "")
    doc = vehicles.find_one({"IMEI": IMEI}, {"_id": 0})
    assert doc == {"IMEI": IMEI, "online": False, "ds_placa": "ABC1234", "ds_modelo": "GV50"}
    vehicles.update_one({"IMEI": IMEI}, {"$set": {"online": True, "protocol": "gv50"}})
    run(config, "add", "phone-7")
    code, out, _ = run(config, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["IMEI", "PLATE", "MODEL", "PROTOCOL", "ONLINE", "LAST", "SEEN"]
    assert lines[1].split() == [IMEI, "ABC1234", "GV50", "gv50", "yes", "-"]
    assert lines[2].split() == ["phone-7", "-", "-", "-", "no", "-"]
    assert lines[3] == "2 device(s)"
    code, out, _ = run(config, "list", "--online")
    lines = out.splitlines()
    assert len(lines) == 3 and lines[1].split()[0] == IMEI and lines[2] == "1 device(s)"


@pytest.mark.integration
def test_an_operator_plate_is_kept_when_not_given(config: Config, vehicles: Any) -> None:
    vehicles.insert_one({"IMEI": IMEI, "ds_placa": "XYZ9876", "online": True})
    assert run(config, "add", IMEI, "--model", "FMB920")[0] == 0
    doc = vehicles.find_one({"IMEI": IMEI})
    assert (doc["ds_placa"], doc["ds_modelo"], doc["online"]) == ("XYZ9876", "FMB920", True)
    assert vehicles.count_documents({"IMEI": IMEI}) == 1


@pytest.mark.integration
def test_a_failed_check_digit_warns_but_registers(config: Config, vehicles: Any) -> None:
    code, out, err = run(config, "add", BAD_LUHN)
    assert code == 0 and "check digit" in err
    assert vehicles.count_documents({"IMEI": BAD_LUHN}) == 1


@pytest.mark.parametrize("argv, message", [
    (("add",), "expected an IMEI"),
    (("add", "86289402 0180553"), "not a device id"),
    (("add", "x" * 41), "not a device id"),
    (("add", IMEI, "--plate", ""), "--plate"),
    (("add", IMEI, "--model", "a\nb"), "--model"),
    (("add", IMEI, "--online"), "belong to `device list`"),
    (("list", IMEI), "takes no IMEI"),
    (("list", "--limit", "-1"), "--limit"),
])
def test_malformed_arguments_exit_2_without_touching_the_store(argv: tuple, message: str) -> None:
    unreachable = Config(mongodb=MongoConfig(uri="mongodb://127.0.0.1:1/"))
    code, out, err = run(unreachable, *argv)
    assert code == 2
    assert message in err and out == ""


def test_unknown_action_is_an_argparse_error_with_status_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("remove", IMEI)
    assert exit_info.value.code == 2


def test_unreachable_store_exits_1_with_a_hint_for_the_embedded_store() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    config = Config(embedded=EmbeddedConfig(host="127.0.0.1", port=free))
    code, out, err = run(config, "list", "--timeout", "0.5")
    assert code == 1
    assert f"cannot reach MongoDB at mongodb://127.0.0.1:{free}/" in err
    assert "embedded store runs only while" in err


@pytest.mark.parametrize("imei, ok", [(IMEI, True), (BAD_LUHN, False), ("490154203237518", True)])
def test_luhn(imei: str, ok: bool) -> None:
    assert device.luhn_ok(imei) is ok
