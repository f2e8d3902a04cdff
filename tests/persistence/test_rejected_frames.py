"""Rejected frames kept for diagnosis: the bounded writer, the capped ``FramesRejeitados``
collection on the embedded store, and `waygps rejected` feeding `waygps decode`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pymongo
import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, deferLater

from waygps.cli.main import main
from waygps.config import Config, RejectedFramesConfig
from waygps.rejected import RejectedFrame, RejectedFrames, document

T0 = datetime(2026, 5, 20, 12, 0, tzinfo=timezone.utc)
IMEI = "862894020180553"
# X1 of the protocol reference: no count, one whole block -> stored, flagged, kept here.
TRUNCATED = (b"+RESP:GTFRI,5E0100,862894020180553,,,12940,10,1,1,0.0,97,179.8,-90.366478,38.735379,"
             b"20230616183231,0310,0410,6709,03ADF710,00,6223.7,,,,,110000,,,,202306161834$")
BAD_VERSION = b"+RESP:GTFRI,ZZ,862894020180553,,,10,1,1,20.0,147,329.7,-62.9,-17.7,20160309113548,,,,,00,,20160309073554,1234$"
GOOD = (b"+RESP:GTFRI,060228,862894020180553,,,10,1,1,20.0,147,329.7,-62.899703,-17.720434,20160309113548,"
        b"0736,0003,6AAE,3381,00,913.3,,,,0,220101,,,,20160309073554,132B$")


def frame(reason: str = "bad_count", data: bytes = b"+RESP:GTXXX,1", driver: str = "gv50") -> RejectedFrame:
    return RejectedFrame(time=T0, listener="gv50-tcp", driver=driver, imei=IMEI, peer="10.0.0.1:4000",
                         reason=reason, data=data)


class FakeCollection:
    def __init__(self, answers: list[Deferred]) -> None:
        self.answers = answers
        self.batches: list[list[dict]] = []

    def insert_many(self, docs: list[dict], ordered: bool = True) -> Deferred:
        self.batches.append(docs)
        return self.answers.pop(0) if self.answers else succeed(None)


class FakeStore:
    def __init__(self, collection: FakeCollection) -> None:
        self.collection = collection
        self.names: list[str] = []

    @property
    def db(self) -> Any:
        store = self

        class Db:
            def __getitem__(self, name: str) -> FakeCollection:
                store.names.append(name)
                return store.collection
        return Db()


def writer(answers: list[Deferred] | None = None, **settings: Any) -> tuple[RejectedFrames, FakeCollection, Clock]:
    collection = FakeCollection(answers or [])
    clock = Clock()
    config = Config(rejected_frames=RejectedFramesConfig(**settings))
    return RejectedFrames(FakeStore(collection), config, clock), collection, clock


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("waygps_rejected_frames_dropped_total", {"reason": reason}) or 0.0


def test_the_document_keeps_the_bytes_as_hex_capped() -> None:
    doc = document(frame(data=b"\x00+RESP" * 10), max_bytes=8)
    assert doc["hex"] == (b"\x00+RESP" * 10)[:8].hex() and doc["size"] == 60 and doc["truncated"] is True
    assert (doc["IMEI"], doc["driver"], doc["listener"], doc["peer"], doc["reason"], doc["time"]) == (
        IMEI, "gv50", "gv50-tcp", "10.0.0.1:4000", "bad_count", T0)
    assert "truncated" not in document(frame(data=b"abc"), max_bytes=8)


def test_offer_only_queues_and_the_write_happens_later() -> None:
    keeper, collection, clock = writer()
    keeper.offer(frame())
    assert collection.batches == [] and keeper.pending() == 1  # nothing written inside offer()
    clock.advance(0)
    assert [d["reason"] for d in collection.batches[0]] == ["bad_count"] and keeper.pending() == 0


def test_a_full_queue_drops_with_a_counter() -> None:
    slow: Deferred = Deferred()
    keeper, collection, clock = writer([slow], queue=3)
    before = dropped("queue_full")
    for _ in range(3):
        keeper.offer(frame())
    clock.advance(0)  # first batch in flight, never answered yet
    for _ in range(5):
        keeper.offer(frame())
    assert keeper.pending() == 3 and dropped("queue_full") - before == 2 and keeper.dropped == 2
    slow.callback(None)
    clock.advance(0)
    assert [len(b) for b in collection.batches] == [3, 3]


def test_a_store_error_drops_the_batch_and_the_writer_goes_on() -> None:
    keeper, collection, clock = writer([fail(RuntimeError("store down"))])
    before = dropped("store_error")
    keeper.offer(frame())
    clock.advance(0)
    assert dropped("store_error") - before == 1
    keeper.offer(frame(reason="noise"))
    clock.advance(0)
    assert [d["reason"] for d in collection.batches[1]] == ["noise"]


def test_disabled_or_stopped_keeps_nothing() -> None:
    keeper, collection, clock = writer(enabled=False)
    keeper.offer(frame())
    clock.advance(0)
    assert collection.batches == []
    keeper, collection, clock = writer()
    keeper.offer(frame())
    keeper.stop()
    keeper.offer(frame())
    clock.advance(0)
    assert collection.batches == [] and keeper.pending() == 0


# --- end to end on the embedded store ----------------------------------------------------


class Device(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest_twisted.inlineCallbacks
def test_rejected_and_shape_decoded_frames_reach_the_capped_collection(start_server: Any) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "name": "gv50-tcp"}])
    db = server.sync_db()
    options = db["FramesRejeitados"].options()
    assert options.get("capped") is True  # created at startup with the indexes
    assert any(dict(info["key"]) == {"time": -1} for info in db["FramesRejeitados"].index_information().values())
    device = Device()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port()), device)
    device.transport.write(GOOD)
    for _ in range(200):
        if device.received:
            break
        yield deferLater(reactor, 0.05, lambda: None)
    assert device.received == b"+SACK:132B$"
    device.transport.write(BAD_VERSION + TRUNCATED)
    docs: list[dict] = []
    for _ in range(400):
        docs = list(db["FramesRejeitados"].find({}, {"_id": 0}).sort("time", 1))
        if len(docs) >= 3:
            break
        yield deferLater(reactor, 0.05, lambda: None)
    assert sorted(d["reason"] for d in docs) == ["bad_count", "bad_version", "decoded_by_shape"]
    for doc in docs:
        assert (doc["driver"], doc["listener"], doc["IMEI"]) == ("gv50", "gv50-tcp", IMEI)
        assert doc["peer"].startswith("127.0.0.1:")
    by_reason = {d["reason"]: d for d in docs}
    assert bytes.fromhex(by_reason["bad_version"]["hex"]) == BAD_VERSION.rstrip(b"$")
    assert bytes.fromhex(by_reason["decoded_by_shape"]["hex"]) == TRUNCATED.rstrip(b"$")
    # the shape-decoded fix itself was stored, and nothing was acknowledged for it (no count)
    stored = db["DadosVeiculo"].find_one({"latitude": 38.735379})
    assert stored is not None and stored["attributes"]["frame_flags"] == ["bad_count", "decoded_by_shape"]
    assert device.received == b"+SACK:132B$"
    device.transport.loseConnection()


# --- the CLI ---------------------------------------------------------------------------------


def test_waygps_rejected_output_feeds_waygps_decode(mongo_uri: str, mongo_db_name: str, tmp_path: Path,
                                                   capsys: Any) -> None:
    client = pymongo.MongoClient(mongo_uri)
    now = datetime.now(timezone.utc)
    collection = client[mongo_db_name]["FramesRejeitados"]
    collection.insert_many([
        document(RejectedFrame(time=now - timedelta(minutes=5), listener="gv50-tcp", driver="gv50", imei=IMEI,
                               peer="10.0.0.1:4000", reason="decoded_by_shape", data=TRUNCATED.rstrip(b"$")), 4096),
        document(RejectedFrame(time=now - timedelta(minutes=3), listener="t", driver="teltonika", imei=None,
                               peer="10.0.0.2:4000", reason="bad_crc", data=b"\x00\x01"), 4096),
        document(RejectedFrame(time=now - timedelta(hours=3), listener="gv50-tcp", driver="gv50", imei=IMEI,
                               peer="10.0.0.1:4000", reason="noise", data=b"old"), 4096),
    ])
    client.close()
    config = tmp_path / "waygps.toml"
    config.write_text(f'[mongodb]\nuri = "{mongo_uri}"\ndatabase = "{mongo_db_name}"\n')
    assert main(["rejected", "-c", str(config), "--since", "1h"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and "1 frame" not in err and "2 frame(s)" in err  # the 3-hour-old one is not shown
    assert lines[0].split()[1:5] == ["gv50", IMEI, "10.0.0.1:4000", "decoded_by_shape"]
    assert lines[1].split()[1:5] == ["teltonika", "-", "10.0.0.2:4000", "bad_crc"]
    assert main(["rejected", "-c", str(config), "--since", "1h", "--driver", "gv50", "--raw"]) == 0
    raw, _ = capsys.readouterr()
    assert raw == TRUNCATED.rstrip(b"$").hex() + "\n"
    capture = tmp_path / "rejected.hex"
    capture.write_text(raw)
    main(["decode", "--driver", "gv50", "--hex", str(capture)])
    decoded, notes = capsys.readouterr()
    (position,) = [json.loads(line) for line in decoded.splitlines()]
    assert (position["latitude"], position["longitude"]) == (38.735379, -90.366478)
    assert "note (decoded_by_shape)" in notes
    assert main(["rejected", "-c", str(config), "--since", "1h", "--imei", "000000000000000"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "0 frame(s)" in err
