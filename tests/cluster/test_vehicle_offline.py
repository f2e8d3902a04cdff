"""A DeviceDisconnected sets Veiculo.online false only while the document names that instance."""

from __future__ import annotations

from datetime import datetime, timezone

import pymongo

from waygps.events import DeviceConnected, DeviceDisconnected
from waygps.vehicles import VehicleDelta

WHEN = datetime(2026, 3, 1, tzinfo=timezone.utc)


def gone(imei: str, instance: str) -> DeviceDisconnected:
    return DeviceDisconnected(imei=imei, protocol="gv50", server_time=WHEN, peer="p", reason="closed",
                              listener="l", instance=instance)


def test_offline_only_while_held_by_the_instance_that_lost_it(mongo_uri: str, mongo_db_name: str) -> None:
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    vehicles = client[mongo_db_name]["Veiculo"]
    try:
        vehicles.insert_many([{"IMEI": "moved", "online": True, "instance": "b"},
                              {"IMEI": "held", "online": True, "instance": "a"},
                              {"IMEI": "old", "online": True}])  # written before instances were recorded
        for imei in ("moved", "held", "old", "new"):
            delta = VehicleDelta(imei)
            delta.add(gone(imei, "a"), 1)
            vehicles.bulk_write([delta.update()])
        online = {doc["IMEI"]: doc.get("online") for doc in vehicles.find()}
        assert online == {"moved": True, "held": False, "old": False, "new": False}

        # connected then disconnected on one instance within one delta: offline, and the holder recorded
        delta = VehicleDelta("moved")
        delta.add(DeviceConnected(imei="moved", protocol="gv50", server_time=WHEN, peer="p", transport="tcp",
                                  listener="l", instance="a"), 2)
        delta.add(gone("moved", "a"), 3)
        vehicles.bulk_write([delta.update()])
        doc = vehicles.find_one({"IMEI": "moved"})
        assert (doc["online"], doc["instance"]) == (False, "a")
        # a later connection wins over an earlier disconnection merged into the same delta
        earlier, later = VehicleDelta("x"), VehicleDelta("x")
        earlier.add(gone("x", "a"), 4)
        later.add(DeviceConnected(imei="x", protocol="gv50", server_time=WHEN, peer="p", transport="tcp",
                                  listener="l", instance="b"), 5)
        earlier.merge(later)
        assert earlier.online is True and earlier.offline_of is None
    finally:
        client.close()
