"""Track points exported per second (JSON and GPX, also GeoJSON and CSV) from the embedded store.

Run: .venv/bin/python benchmarks/bench_history_export.py [--points 200000] [--formats json,gpx]

Starts an embedded SecantusDB for the run, inserts ``--points`` reports of one
device (``DadosVeiculo`` documents with every contract field) and builds the
track index, then measures, one after the other:

(a) **store read**: a pymongo cursor over the track (sorted, hinted, the
    export's projection), documents only: the ceiling of any export;
(b) **HTTP API**: the real server (``twistd waygps`` in a child process, on the
    same store) streaming ``/api/v1/devices/{imei}/positions?format=...``;
    this process reads the response in 64 KiB chunks and counts the points;
(c) **CLI path**: ``waygps history``'s loop (pymongo batches + the encoder) in
    this process, writing to /dev/null.

Prints points/s for each and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from waygps.history.export import encoder_for  # noqa: E402
from waygps.history.points import PROJECTION  # noqa: E402
from waygps.history.query import HINT, SORT, TrackQuery  # noqa: E402
from waygps.history.source import iter_batches  # noqa: E402
from waygps.store.embedded import find_command  # noqa: E402

IMEI = "862894020180553"
TOKEN = "bench-token"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def insert(db, points: int) -> None:
    collection = db["DadosVeiculo"]
    batch = 20_000
    for start in range(0, points, batch):
        collection.insert_many([{
            "_id": f"b{i:09d}", "IMEI": IMEI, "latitude": -33.45 + i * 1e-6, "longitude": -70.65 + i * 1e-6,
            "altitude": 520.0, "speed": 42.0, "course": 45.0, "satellites": 11, "hdop": 0.8,
            "ignicao": True, "valid": True, "dataDevice": T0 + timedelta(seconds=i),
            "dataServidor": T0 + timedelta(seconds=i, milliseconds=700), "protocol": "gv50",
            "event": "tracking", "attributes": {"mileage_km": 1000 + i * 0.01, "quality": "excelente"},
            "raw": "+RESP:GTFRI,...$"} for i in range(start, min(points, start + batch))], ordered=False)
    collection.create_index([("IMEI", 1), ("dataDevice", -1)])
    db["Veiculo"].insert_one({"IMEI": IMEI})


def store_read(db, points: int) -> float:
    query = TrackQuery(IMEI, T0, T0 + timedelta(seconds=points))
    started = time.perf_counter()
    n = sum(1 for _ in db["DadosVeiculo"].find(query.filter(), dict(PROJECTION), batch_size=1000)
            .sort(list(SORT)).hint(list(HINT)))
    assert n == points, n
    return n / (time.perf_counter() - started)


def api(port: int, fmt: str, points: int) -> float:
    end = (T0 + timedelta(seconds=points)).isoformat().replace("+00:00", "Z")
    url = (f"http://127.0.0.1:{port}/api/v1/devices/{IMEI}/positions?format={fmt}"
           f"&from={T0.isoformat().replace('+00:00', 'Z')}&to={end}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    marker = {"json": b'"time"', "geojson": b'"Feature"', "gpx": b"<trkpt ", "csv": b"\r\n"}[fmt]
    count = 0
    tail = b""
    head = b""
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        while True:
            chunk = response.read(65536)
            if not chunk:
                break
            data = tail + chunk
            head = head or chunk[:300]
            count += data.count(marker)
            tail = data[-(len(marker) - 1):]
    elapsed = time.perf_counter() - started
    if fmt == "csv":
        count -= 1  # the header line
    assert count == points, (fmt, count, head)
    return points / elapsed


def cli(db, fmt: str, points: int) -> float:
    query = TrackQuery(IMEI, T0, T0 + timedelta(seconds=points))
    encoder = encoder_for(fmt, IMEI)
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        sink.write(encoder.head())
        for batch in iter_batches(db["DadosVeiculo"], query, 1000):
            sink.write(encoder.points(batch))
        sink.write(encoder.tail())
    assert encoder.count == points
    return points / (time.perf_counter() - started)


def main() -> None:
    import pymongo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--formats", default="json,gpx,geojson,csv")
    args = parser.parse_args()
    formats = args.formats.split(",")
    print(f"load average before: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="waygps-bench-history-"))
    store_port, web_port = free_port(), free_port()
    uri = f"mongodb://127.0.0.1:{store_port}/"
    store = subprocess.Popen([find_command("secantusd-py"), "--host", "127.0.0.1", "--port", str(store_port),
                              "--storage-path", str(work / "data"), "--standalone", "--log-level", "WARNING",
                              "--cache-size", "512M"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        wait_port(store_port)
        client = pymongo.MongoClient(uri, tz_aware=True)
        db = client["bench"]
        started = time.perf_counter()
        insert(db, args.points)
        print(f"inserted and indexed {args.points:,} points in {time.perf_counter() - started:.0f} s")
        config = work / "waygps.toml"
        # retention off: the reports are from January, a 90-day TTL would delete them during the run
        config.write_text(f'[mongodb]\nuri = "{uri}"\ndatabase = "bench"\n[stats]\nenabled = false\n'
                          '[retention]\ndays = 0\n'
                          f'[websocket]\nport = {web_port}\nhost = "127.0.0.1"\n'
                          f'[[websocket.tokens]]\ntoken = "{TOKEN}"\ndevices = "*"\n')
        server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "twistd"), "--nodaemon", "--pidfile=", "waygps",
                                   "--config", str(config)], cwd=work, stdout=open(work / "server.log", "ab"),
                                  stderr=subprocess.STDOUT)
        wait_port(web_port)
        print(f"(a) store read (pymongo cursor, documents only): {store_read(db, args.points):,.0f} points/s")
        for fmt in formats:
            print(f"(b) HTTP API   format={fmt:8s}: {api(web_port, fmt, args.points):,.0f} points/s")
        for fmt in formats:
            print(f"(c) CLI path   format={fmt:8s}: {cli(db, fmt, args.points):,.0f} points/s")
        client.close()
    except Exception:
        log = work / "server.log"
        if log.exists():
            print(log.read_text()[-3000:])
        raise
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        store.terminate()
        store.wait(30)
        shutil.rmtree(work, ignore_errors=True)
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
