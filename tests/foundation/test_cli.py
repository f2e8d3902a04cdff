"""The command-line faces: `twistd waygps`, `waygps --help`, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_twistd_lists_waygps() -> None:
    result = run(str(BIN / "twistd"), "--help")
    assert result.returncode == 0
    assert any(line.split()[:1] == ["waygps"] for line in result.stdout.splitlines())


def test_waygps_help_lists_the_tools() -> None:
    result = run(str(BIN / "waygps"), "--help")
    assert result.returncode == 0, result.stderr
    for name in ("decode", "drivers", "command", "device", "status", "cleanup"):
        assert name in result.stdout


def test_broken_config_is_one_line_and_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[listener]]\ndriver = "gv50"\nport = 8081\n\n[[listener]]\ndriver = "gv50"\nport = 8081\n')
    result = run(str(BIN / "twistd"), "--nodaemon", "--pidfile=", "waygps", "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert lines == ["waygps: configuration error: listener[1].port: tcp port 8081 is already used by listener[0]"]
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_driver_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[listener]]\ndriver = "nosuch"\nport = 1\n')
    result = run(str(BIN / "twistd"), "-n", "--pidfile=", "waygps", "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "listener[0].driver: unknown driver 'nosuch'" in result.stderr
    result = run(str(BIN / "twistd"), "-n", "--pidfile=", "waygps", "--config", str(tmp_path / "none.toml"),
                 cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().endswith("none.toml: no such file")


def test_log_format_json_makes_every_line_a_json_object(tmp_path: Path) -> None:
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nothing = s.getsockname()[1]  # closed again: no MongoDB there
    config = tmp_path / "waygps.toml"
    config.write_text(f'[mongodb]\nuri = "mongodb://127.0.0.1:{nothing}/"\nconnect_timeout = 1\n'
                      '[websocket]\nport = 0\n')
    result = run(str(BIN / "twistd"), "-n", "--pidfile=", "waygps", "--config", str(config),
                 "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    [critical] = [r for r in records if r["level"] == "critical"]
    assert critical["namespace"] == "waygps.service"
    assert critical["message"].startswith("waygps: cannot start: mongodb.uri: cannot reach")
    assert any(r["message"].startswith("store: MongoDB at") for r in records)
