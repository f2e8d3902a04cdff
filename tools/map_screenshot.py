"""Make ``docs/images/map.png``: the real server, several fake GV50 devices moving, headless Chromium.

    .venv/bin/python tools/map_screenshot.py [--out docs/images/map.png] [--tiles URL]

Starts ``twistd waygps`` on free ports with the embedded store in a temporary
directory, gives the devices plates, lets them report over real TCP, opens the
map with the same browser tooling as the browser test (tests/web/browser_support.py)
and saves a screenshot. With the default tiles (none reachable) the background is
blank; ``--tiles`` can point at a tile server for a prettier picture.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "web"))

from browser_support import NO_TILES, Browser, find_browser, gtfri, recent  # noqa: E402

TOKEN = "screenshot-token"
CENTRE = (-17.7833, -63.1821)  # Santa Cruz de la Sierra
# (IMEI, plate, heading in degrees, speed km/h, ignition, stays connected)
FLEET = [
    ("862894020180553", "2043-KTR", 20, 48.0, True, True),
    ("862894020180561", "3318-BNP", 110, 35.0, True, True),
    ("862894020180579", "1987-LZD", 200, 52.0, True, True),
    ("862894020180587", "4410-GHX", 290, 0.0, True, True),
    ("862894020180595", "2766-PWS", 330, 0.0, False, True),
    ("862894020180603", "3051-MRC", 60, 41.0, True, False),
]
STEPS = 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def report(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(frame)
    answer = b""
    while not answer.endswith(b"$"):
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionError("server closed the device connection")
        answer += chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "map.png"))
    parser.add_argument("--tiles", default=NO_TILES)
    args = parser.parse_args()
    found = find_browser()
    if isinstance(found, str):
        sys.exit(f"cannot make the screenshot: {found}")
    work = Path(tempfile.mkdtemp(prefix="waygps-shot-"))
    web, gv50, store = free_port(), free_port(), free_port()
    (work / "waygps.toml").write_text(f"""
[mongodb]
database = "waygps"
[embedded]
data_dir = "{work / 'db'}"
port = {store}
[[listener]]
driver = "gv50"
transport = "tcp"
host = "127.0.0.1"
port = {gv50}
[websocket]
host = "127.0.0.1"
port = {web}
[[websocket.tokens]]
token = "{TOKEN}"
devices = "*"
[map]
tiles = "{args.tiles}"
""")
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "twistd"), "--nodaemon", "--pidfile=", "waygps",
                               "--config", str(work / "waygps.toml")], cwd=work,
                              stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)
    browser = None
    sockets: list[socket.socket] = []
    try:
        wait_http(f"http://127.0.0.1:{web}/health")
        import pymongo

        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{store}/", serverSelectionTimeoutMS=5000)
        for imei, plate, *_ in FLEET:
            client.waygps.Veiculo.update_one({"IMEI": imei}, {"$set": {"ds_placa": plate}}, upsert=True)
        client.close()
        sockets = [socket.create_connection(("127.0.0.1", gv50), timeout=30) for _ in FLEET]

        where = [(CENTRE[0] + 0.012 * math.sin(i), CENTRE[1] + 0.015 * math.cos(i)) for i in range(len(FLEET))]

        def step(n: int) -> None:
            for index, (sock, (imei, _, heading, speed, ignition, _)) in enumerate(zip(sockets, FLEET)):
                course = (heading + n * (4 if index % 2 else -3)) % 360  # roads bend
                if speed and n:
                    distance = 0.0007 * (0.5 + speed / 100)
                    lat, lon = where[index]
                    where[index] = (lat + distance * math.cos(math.radians(course)),
                                    lon + distance * math.sin(math.radians(course)))
                lat, lon = where[index]
                report(sock, gtfri(imei, lat, lon, recent(STEPS - n), 0x100 + n, speed=speed, course=course,
                                   ignition=ignition, battery=60 + 5 * index))

        step(0)
        chromium, chromedriver = found
        browser = Browser(chromium, chromedriver, width=1280, height=760)
        browser.driver.get(f"http://127.0.0.1:{web}/#token={TOKEN}")
        browser.wait_for(f"Object.keys(WayGPS.markers).length === {len(FLEET)}")
        for n in range(1, STEPS + 1):
            step(n)
            time.sleep(0.05)
        last = FLEET[-1][0]
        browser.wait_for(f"WayGPS.trails['{FLEET[0][0]}'].getLatLngs().length === {STEPS + 1}")
        for sock, member in zip(sockets, FLEET):
            if not member[5]:
                sock.close()
        browser.wait_for(f"WayGPS.position('{last}').state === 'offline'")
        browser.driver.execute_script("WayGPS.map.fitBounds(L.latLngBounds(Object.values(WayGPS.markers)"
                                      ".map(m => m.getLatLng())).pad(0.3));")
        time.sleep(0.5)
        browser.driver.execute_script(f"WayGPS.markers['{FLEET[0][0]}'].openPopup();")
        time.sleep(0.5)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        browser.driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        if browser is not None:
            browser.quit()
        for sock in sockets:
            sock.close()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
