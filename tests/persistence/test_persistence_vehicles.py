"""Veiculo upserts: folding events per device, and what the update pipeline does on the real store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

import pymongo
import pytest

from persistence_support import IMEI, T0, position
from waygps.events import DeviceConnected, DeviceDisconnected, Heartbeat
from waygps.vehicles import VehicleDelta


def delta(*events: Any) -> VehicleDelta:
    d = VehicleDelta(IMEI)
    for seq, event in enumerate(events, 1):
        d.add(event, seq)
    return d


def connected(minutes: float = 0.0) -> DeviceConnected:
    return DeviceConnected(imei=IMEI, protocol="teltonika", server_time=T0 + timedelta(minutes=minutes),
                           peer="10.0.0.1:4000", transport="tcp", listener="teltonika-tcp-5027")


def disconnected(minutes: float = 0.0) -> DeviceDisconnected:
    return DeviceDisconnected(imei=IMEI, protocol="teltonika", server_time=T0 + timedelta(minutes=minutes),
                              peer="10.0.0.1:4000", reason="closed by device", listener="teltonika-tcp-5027")


def test_the_newest_valid_report_of_a_batch_wins_whatever_the_order() -> None:
    d = delta(position(key="b", minutes=5, lat=-17.5), position(key="a", minutes=1, lat=-17.1),
              position(key="c", minutes=9, lat=-17.9, valid=False))
    assert d.position is not None and d.position.key == "b"
    assert d.last_seen == T0 + timedelta(minutes=9)


def test_online_follows_the_last_event_in_delivery_order() -> None:
    assert delta(connected(), position(), disconnected()).online is False
    assert delta(disconnected(), connected(1)).online is True
    assert delta(disconnected(), position(buffered=True)).online is False  # a +BUFF replay says nothing
    assert delta(disconnected(), Heartbeat(imei=IMEI, protocol="gv50", server_time=T0)).online is True


def test_merge_keeps_the_order_of_delivery() -> None:
    earlier = delta(position(key="a", minutes=2))
    later = VehicleDelta(IMEI)
    later.add(disconnected(3), 10)
    later.add(position(key="old", minutes=1, buffered=True), 11)
    earlier.merge(later)
    assert earlier.online is False and earlier.position is not None and earlier.position.key == "a"


def test_strings_are_literals_in_the_pipeline() -> None:
    stage = delta(position(attributes={"model": "$ds_placa"}, protocol="$x"))
    fields = stage.pipeline()[0]["$set"]
    assert fields["protocol"] == {"$literal": "$x"}
    assert fields["ds_modelo"]["$cond"][1] == {"$literal": "$ds_placa"}
    assert set(fields).isdisjoint({"ds_placa", "comandoBloqueo", "bloqueado", "comandoTrocarIP"})


# --- on the real store -------------------------------------------------------


@pytest.fixture
def vehicles(mongo_uri: str, mongo_db_name: str) -> Iterator[Any]:
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    collection = client[mongo_db_name]["Veiculo"]
    collection.create_index("IMEI", unique=True)
    yield collection
    client.close()


def apply(collection: Any, *events: Any) -> dict:
    operation = delta(*events).update()
    assert operation is not None
    collection.bulk_write([operation], ordered=False)
    found = collection.find_one({"IMEI": IMEI}, {"_id": 0})
    assert found is not None
    return found


def test_a_new_device_gets_its_document(vehicles: Any) -> None:
    doc = apply(vehicles, connected(), position(minutes=1, ignition=True, attributes={"model": "GV50"}))
    assert doc["online"] is True and doc["protocol"] == "gv50" and doc["ignicao"] is True
    assert doc["ds_modelo"] == "GV50"
    assert (doc["latitude"], doc["longitude"], doc["speed"], doc["course"]) == (-17.72, -63.1, 20.0, 147.0)
    assert doc["location"] == {"type": "Point", "coordinates": [-63.1, -17.72]}
    assert doc["dataDevice"] == (T0 + timedelta(minutes=1)).replace(tzinfo=None)
    assert doc["lastSeen"] == (T0 + timedelta(minutes=1)).replace(tzinfo=None)


def test_an_older_report_never_moves_the_vehicle_back(vehicles: Any) -> None:
    apply(vehicles, position(minutes=10, lat=-17.0, ignition=True))
    doc = apply(vehicles, position(key="old", minutes=5, lat=-16.0, ignition=False, buffered=True))
    assert doc["latitude"] == -17.0 and doc["ignicao"] is True
    assert doc["dataDevice"] == (T0 + timedelta(minutes=10)).replace(tzinfo=None)
    assert doc["lastSeen"] == (T0 + timedelta(minutes=10)).replace(tzinfo=None)  # $max, not the older time
    doc = apply(vehicles, position(key="new", minutes=11, lat=-18.0, ignition=False))
    assert doc["latitude"] == -18.0 and doc["ignicao"] is False


def test_an_invalid_report_moves_nothing_but_still_tells_ignition_and_last_seen(vehicles: Any) -> None:
    apply(vehicles, position(minutes=1, lat=-17.0))
    doc = apply(vehicles, position(key="nofix", minutes=2, lat=-30.0, valid=False, ignition=False))
    assert doc["latitude"] == -17.0 and doc["ignicao"] is False
    assert doc["lastSeen"] == (T0 + timedelta(minutes=2)).replace(tzinfo=None)


def test_operator_fields_are_never_overwritten_and_the_model_only_when_empty(vehicles: Any) -> None:
    vehicles.insert_one({"IMEI": IMEI, "ds_placa": "ABC1D23", "ds_modelo": "Hilux", "comandoBloqueo": True,
                         "bloqueado": False, "comandoTrocarIP": "10.0.0.9:5001"})
    doc = apply(vehicles, connected(), position(attributes={"model": "GV50"}), disconnected(1))
    assert (doc["ds_placa"], doc["ds_modelo"], doc["comandoBloqueo"], doc["bloqueado"],
            doc["comandoTrocarIP"]) == ("ABC1D23", "Hilux", True, False, "10.0.0.9:5001")
    assert doc["online"] is False
    vehicles.update_one({"IMEI": IMEI}, {"$set": {"ds_modelo": ""}})
    assert apply(vehicles, position(key="x", attributes={"model": "GV50"}))["ds_modelo"] == "GV50"


def test_battery_power_signal_and_satellites_of_the_newest_report_that_states_them(vehicles: Any) -> None:
    doc = apply(vehicles, position(minutes=1, satellites=7, attributes={"battery": 80, "power": 12.4, "rssi": 21}),
                position(key="k2", minutes=2, satellites=None, attributes={"battery": 78}))
    # battery from the newer report, power and rssi from the only report that states them
    assert (doc["battery"], doc["power"], doc["rssi"], doc["satellites"]) == (78, 12.4, 21, 7)
    # a replayed older report does not overwrite the newer levels
    doc = apply(vehicles, position(key="old", minutes=0, buffered=True, satellites=3,
                                   attributes={"battery": 10, "power": 9.0}))
    assert (doc["battery"], doc["power"], doc["satellites"]) == (78, 12.4, 7)
    # a newer report without a fix still tells its levels (Teltonika's 0-5 level has its own field)
    doc = apply(vehicles, position(key="new", minutes=5, valid=False, satellites=0,
                                   attributes={"battery": 50, "gsm_signal": 4, "power": True}))
    assert (doc["battery"], doc["gsmSignal"], doc["satellites"], doc["power"]) == (50, 4, 0, 12.4)
