"""Ctrl-C in a terminal signals the whole foreground process group: the embedded store must not get it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.foundation.test_twistd_run import wait_for_port

BIN = Path(sys.executable).parent


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_ctrl_c_reaches_twistd_only_and_it_stops_the_store_itself(tmp_path: Path) -> None:
    web, store = free_port(), free_port()
    config = tmp_path / "waygps.toml"
    config.write_text(f'[embedded]\ndata_dir = "{tmp_path / "db"}"\nport = {store}\n'
                      f'[websocket]\nhost = "127.0.0.1"\nport = {web}\n')
    log = tmp_path / "twistd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "twistd"), "-n", "--pidfile=", "waygps", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            wait_for_port(web, proc)
            [child] = children(proc.pid)
            assert os.getpgid(child) != os.getpgid(proc.pid), "the store shares twistd's process group"
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert "embedded store: stopped (exit status 0)" in text
    assert text.index("persistence: queue flushed") < text.index("embedded store: stopped")
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists()
