"""A full `twistd waygps` run used with tokens: no token string appears anywhere in its log.

WebSocket handshakes with the right token, a wrong one, the right one on a wrong
path and in an ``Authorization`` header; HTTP requests with ``?token=`` and
Bearer headers on /metrics, /health and unknown paths; a configured token
value itself inside a request. Both log paths are scanned: twistd's own
observer (text, level info) and the JSON observer at level debug.
"""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet.defer import Deferred

from tests.conftest import free_port
from tests.foundation.test_twistd_run import BIN, wait_for_port


class Client(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.outcome.callback("open")
        self.sendClose()

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.factory.outcome.called:
            self.factory.outcome.callback(f"refused: {reason}")


def handshake(port: int, path: str, headers: dict | None = None) -> Deferred:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}{path}", headers=headers or {})
    factory.protocol = Client
    factory.outcome = Deferred()
    connectWS(factory)
    return factory.outcome


def get(port: int, path: str, headers: dict | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("log_format, level", [("text", "info"), ("json", "debug")])
@pytest_twisted.inlineCallbacks
def test_no_token_in_the_log_of_a_full_run(tmp_path: Path, log_format: str, level: str) -> None:
    ws_token = "wsTOKEN" + secrets.token_hex(8)
    metrics_token = "mTOKEN" + secrets.token_hex(8)
    wrong = "wrongTOKEN" + secrets.token_hex(8)
    ports = {name: free_port() for name in ("gv50", "web", "store")}
    config = tmp_path / "waygps.toml"
    config.write_text(f"""
[embedded]
data_dir = "{tmp_path / 'db'}"
port = {ports['store']}
[[listener]]
driver = "gv50"
host = "127.0.0.1"
port = {ports['gv50']}
[websocket]
port = {ports['web']}
[[websocket.tokens]]
token = "{ws_token}"
[web]
metrics_token = "{metrics_token}"
[logging]
format = "{log_format}"
level = "{level}"
""")
    log = tmp_path / "twistd.log"
    out = log.open("wb")
    proc = subprocess.Popen([str(BIN / "twistd"), "--nodaemon", "--pidfile=", "waygps", "--config", str(config)],
                            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    web = ports["web"]
    try:
        wait_for_port(web, proc)
        outcomes = []
        for path, headers in ((f"/ws/gps/?token={ws_token}", None), (f"/ws/gps/?token={wrong}", None),
                              (f"/ws/other/?token={ws_token}", None), (f"/ws/gps/?access_token={ws_token}", None),
                              ("/ws/gps/", {"Authorization": f"Bearer {ws_token}"}),
                              ("/ws/gps/", {"Authorization": f"Bearer {wrong}"})):
            outcomes.append((yield handshake(web, path, headers)))
        assert outcomes[0] == "open" and outcomes[4] == "open", outcomes
        assert all(o.startswith("refused") for o in outcomes[1:4] + outcomes[5:]), outcomes

        assert get(web, f"/metrics?token={metrics_token}") == 200
        assert get(web, "/metrics", {"Authorization": f"Bearer {metrics_token}"}) == 200
        assert get(web, "/metrics") == 401
        assert get(web, f"/metrics?token={wrong}") == 403
        assert get(web, "/health", {"Authorization": f"Bearer {wrong}"}) == 403
        assert get(web, f"/health?token={metrics_token}") in (200, 503)
        assert get(web, f"/nothing/here?token={ws_token}&x=1") == 404
        assert get(web, f"/ws/gps/?token={ws_token}") in (200, 400, 426)  # not an upgrade: access-logged
        assert get(web, f"/?access_token={metrics_token}", {"Authorization": f"Basic {wrong}"}) in (200, 404)
        assert get(web, f"/x/{ws_token}/y") == 404  # the value itself, where no pattern would find it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    text = log.read_text(errors="replace")
    for secret in (ws_token, metrics_token, wrong):
        assert secret not in text, f"{secret} leaked: " + next(l for l in text.splitlines() if secret in l)
    # The requests were logged (with the secrets masked): the scan looked at real lines.
    assert "/nothing/here?token=<redacted>&x=1" in text
    assert "/x/<redacted>/y" in text
    assert "metrics refused: invalid token" in text
    assert "refused, unknown token" in text
    if log_format == "json":
        for line in text.splitlines():
            if line.startswith("{"):
                json.loads(line)
    assert f"tcp 127.0.0.1:{web} (web)" in text, "the startup log names every exposed address"
    print(f"scanned {len(text.splitlines())} log lines ({log_format}, {level}); python {sys.version_info[:2]}")
