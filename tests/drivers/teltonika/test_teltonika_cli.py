"""`waygps decode --driver teltonika --hex` on a captured TCP session and on a UDP datagram."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teltonika_vectors import TV
from waygps.cli.main import main


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *flags: str
) -> tuple[int, list[dict], str]:
    capture = tmp_path / "capture.hex"
    capture.write_text(text)
    code = main(
        ["decode", "--driver", "teltonika", "--hex", "--now", "2025-11-24T12:00:00Z", *flags, str(capture)]
    )
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_tcp_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, events, err = run(
        tmp_path, capsys, TV["TV-01"] + TV["TV-04"] + "FF" + TV["TV-15"] + TV["TV-08"] + "\n"
    )
    assert code == 0 and err == ""
    assert [e["type"] for e in events] == ["position", "position", "position", "command_ack"]
    assert {e["IMEI"] for e in events} == {"356307042441013"}
    assert events[2]["latitude"] == 48.1523066 and events[2]["valid"] is True
    assert events[2]["dataDevice"] == "2019-01-04T12:27:19Z" and events[2]["attributes"]["power"] == 14.233
    assert events[3]["response"].startswith("INI:2019/7/22")


def test_udp_datagrams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, events, err = run(tmp_path, capsys, TV["TV-12"] + "\n" + TV["TV-14"] + "\n", "--udp")
    assert code == 0
    assert [(e["IMEI"], e["dataDevice"]) for e in events] == [
        ("352093086403655", "2019-06-13T06:23:26Z"),
        ("357454072713975", "2017-07-12T15:24:41Z"),
    ]


def test_bad_crc_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = TV["TV-02"][:-2] + "00"
    code, events, err = run(tmp_path, capsys, TV["TV-01"] + bad + "\n")
    assert code == 1 and events == [] and "bad_crc" in err
