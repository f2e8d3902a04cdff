"""`twistd waygps` for real: embedded store, listeners up, clean stop on SIGINT / SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

BIN = Path(sys.executable).parent


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"twistd exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"port {port} never opened")


# Each signal once, each reactor once: Twisted's default, and ``waygps.reactor`` as ``make run`` selects it.
@pytest.mark.parametrize(("sig", "reactor"), [(signal.SIGINT, None), (signal.SIGTERM, "waygps")])
def test_server_runs_on_the_embedded_store_and_stops_cleanly(tmp_path: Path, sig: int, reactor: str | None) -> None:
    ports = {name: free_port() for name in ("gv50", "teltonika", "generic", "web", "store")}
    config = tmp_path / "waygps.toml"
    config.write_text(f"""
[embedded]
data_dir = "{tmp_path / 'db'}"
port = {ports['store']}
[[listener]]
driver = "gv50"
host = "127.0.0.1"
port = {ports['gv50']}
[[listener]]
driver = "teltonika"
host = "127.0.0.1"
port = {ports['teltonika']}
[[listener]]
driver = "generic"
transport = "udp"
host = "127.0.0.1"
port = {ports['generic']}
[websocket]
host = "127.0.0.1"
port = {ports['web']}
""")
    log = tmp_path / "twistd.log"
    with log.open("wb") as out:
        choice = ["--reactor", reactor] if reactor else []
        proc = subprocess.Popen([str(BIN / "twistd"), "--nodaemon", "--pidfile=", *choice, "waygps", "--config",
                                 str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            for name in ("gv50", "teltonika", "web"):
                wait_for_port(ports[name], proc)
            with socket.create_connection(("127.0.0.1", ports["gv50"])) as device:
                device.sendall(b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$")
                device.settimeout(10)
                assert device.recv(100) == b"+SACK:GTHBD,1A0401,11F0$"
            proc.send_signal(sig)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    expected = "waygps.reactor.WayGPSReactor" if reactor else "twisted.internet.epollreactor.EPollReactor"
    assert f"reactor class: {expected}" in text
    assert "embedded SecantusDB at mongodb://127.0.0.1:%d/" % ports["store"] in text
    for name in ("gv50", "teltonika", "generic"):
        assert f"driver {name} on " in text
    assert "waygps: stopped" in text
    assert "runtime: garbage collector thresholds (10000, 20, 20)" in text  # [runtime] defaults, applied
    assert "start-up objects left out of garbage collection" in text
    assert "Traceback" not in text
    # the child store is gone: its port is closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports["store"]), timeout=1).close()


def test_unreachable_mongodb_fails_fast_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "waygps.toml"
    config.write_text(f"""
[mongodb]
uri = "mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"
connect_timeout = 3
[websocket]
port = 0
""")
    result = subprocess.run([str(BIN / "twistd"), "-n", "--pidfile=", "waygps", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot start: mongodb.uri: cannot reach" in result.stdout + result.stderr
