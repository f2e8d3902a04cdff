"""The contract's indexes and the retention TTL, created (or corrected) at startup.

Existing indexes are compared by key pattern, so an index an operator created
under another name is reused, not duplicated. The TTL on ``dataServidor``
follows ``[retention] days``: created, changed in place with ``collMod`` (or
dropped and created again where ``collMod`` is refused), or turned into a
plain index when retention is off (``days = 0``), so that
``waygps cleanup`` still finds old reports by index. It is a plain index too
when WayGPS deletes expired reports itself (``[retention] expiry``, by default
on the embedded store, whose own TTL pass reads the whole collection under its
lock: ``waygps.store.expiry``).

Geo indexes: ``Veiculo.location`` always gets a ``2dsphere`` (one document per
device: cheap, answers "which vehicles are near here"); ``DadosVeiculo.location``
only with ``[mongodb] history_geo_index = true``, because on the embedded store
that index costs most of the time of an insert. The ``location`` field is in
every history document either way, so the index can be added later.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import OperationFailure
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from waygps.config import Config

log = Logger(namespace="waygps.indexes")

TRACK = (("IMEI", 1), ("dataDevice", -1))
GEO = (("location", "2dsphere"),)
RECEIVED = (("dataServidor", 1),)
VEHICLE = (("IMEI", 1),)
COMMAND_QUEUE = (("IMEI", 1), ("status", 1), ("createdAt", 1))
COMMAND_EXPIRY = (("status", 1), ("expiresAt", 1))

NAMESPACE_NOT_FOUND = 26
DAY = 86400


def index_name(key: tuple[tuple[str, Any], ...]) -> str:
    """MongoDB's default name of an index on ``key``."""
    return "_".join(f"{field}_{direction}" for field, direction in key)


def _key_of(info: Any) -> tuple[tuple[str, Any], ...]:
    key = info.get("key", {})
    items = key.items() if hasattr(key, "items") else key
    return tuple((str(field), int(d) if isinstance(d, float) else d) for field, d in items)


async def _existing(collection: Any) -> dict[tuple, dict]:
    """Key pattern -> index description (empty when the collection does not exist yet)."""
    try:
        info = await collection.index_information()
    except OperationFailure as e:
        if e.code == NAMESPACE_NOT_FOUND:
            return {}
        raise
    out: dict[tuple, dict] = {}
    for name, description in info.items():
        description = dict(description)
        description["name"] = name
        out[_key_of(description)] = description
    return out


async def _create(db: Any, collection: str, specs: list[dict]) -> None:
    if specs:
        await db.command("createIndexes", collection, indexes=specs)
        for spec in specs:
            log.info("index {name} created on {collection}", name=spec["name"], collection=collection)


async def _ensure_plain(db: Any, name: str, existing: dict, keys: list[tuple], report: dict) -> None:
    specs = []
    for key in keys:
        if key not in existing:
            specs.append({"key": dict(key), "name": index_name(key)})
            report["created"].append(f"{name}.{index_name(key)}")
    await _create(db, name, specs)


async def _ensure_retention(db: Any, name: str, existing: dict, days: int, report: dict,
                            by_waygps: bool = False) -> None:
    current = existing.get(RECEIVED)
    wanted = days * DAY if days > 0 else None
    label = f"{name}.{index_name(RECEIVED)}"
    if current is None:
        spec: dict[str, Any] = {"key": dict(RECEIVED), "name": index_name(RECEIVED)}
        if wanted is not None:
            spec["expireAfterSeconds"] = wanted
        await _create(db, name, [spec])
        report["created"].append(label)
        return
    have = current.get("expireAfterSeconds")
    have = int(have) if have is not None else None
    if have == wanted:
        return
    if wanted is not None:
        try:
            change = {"keyPattern": dict(RECEIVED), "expireAfterSeconds": wanted}
            await db.command("collMod", name, index=change)
            log.info("retention on {collection}: TTL changed from {old} to {new} seconds", collection=name,
                     old=have, new=wanted)
            report["changed"].append(label)
            return
        except OperationFailure as e:
            log.warn("retention on {collection}: collMod refused ({error}); dropping and recreating the "
                     "index", collection=name, error=e)
    await db.command("dropIndexes", name, index=current["name"])
    spec = {"key": dict(RECEIVED), "name": index_name(RECEIVED)}
    if wanted is not None:
        spec["expireAfterSeconds"] = wanted
    await _create(db, name, [spec])
    why = "WayGPS deletes expired reports itself (retention.expiry)" if by_waygps else "retention.days = 0"
    log.info("retention on {collection}: TTL {change}", collection=name,
             change=f"set to {wanted} seconds" if wanted else f"removed ({why})")
    report["changed"].append(label)


async def _ensure_vehicle_unique(db: Any, name: str, existing: dict, report: dict) -> None:
    current = existing.get(VEHICLE)
    if current is None:
        try:
            await _create(db, name, [{"key": dict(VEHICLE), "name": index_name(VEHICLE), "unique": True}])
            report["created"].append(f"{name}.{index_name(VEHICLE)}")
        except OperationFailure as e:
            # Existing data with one IMEI twice: refuse to guess which document is right.
            log.error("index: cannot create a unique IMEI index on {collection} ({error}); remove the "
                      "duplicate IMEI documents and restart", collection=name, error=e)
            report["problems"].append(f"{name}.{index_name(VEHICLE)}: {e}")
        return
    if not current.get("unique"):
        log.error("index: {collection} has a non-unique index {index} on IMEI; WayGPS expects one "
                  "document per device. Drop it (after removing duplicates) to let WayGPS create a "
                  "unique one",
                  collection=name, index=current["name"])
        report["problems"].append(f"{name}.{current['name']}: not unique")


async def _ensure_geo(db: Any, name: str, existing: dict, wanted: bool, report: dict) -> None:
    """Create ``location_2dsphere`` when ``wanted``; an index that exists is never dropped, only reported."""
    current = existing.get(GEO)
    if current is None:
        if wanted:
            await _ensure_plain(db, name, existing, [GEO], report)
        return
    if not wanted:
        log.info("index {index} on {collection} exists although [mongodb] history_geo_index is off: left "
                 "alone (dropping it makes history inserts several times faster on the embedded store)",
                 index=current["name"], collection=name)
        report["kept"].append(f"{name}.{current['name']}")


async def _ensure(store: Any, config: Config) -> dict[str, list[str]]:
    names = config.mongodb.collections
    db = store.db
    report: dict[str, list[str]] = {"created": [], "changed": [], "kept": [], "problems": []}
    positions = await _existing(db[names.positions])
    await _ensure_plain(db, names.positions, positions, [TRACK], report)
    await _ensure_geo(db, names.positions, positions, config.mongodb.history_geo_index, report)
    by_waygps = config.retention.by_waygps(config.mongodb)
    await _ensure_retention(db, names.positions, positions, 0 if by_waygps else config.retention.days, report,
                            by_waygps)
    vehicles = await _existing(db[names.vehicles])
    await _ensure_vehicle_unique(db, names.vehicles, vehicles, report)
    await _ensure_plain(db, names.vehicles, vehicles, [GEO], report)
    commands = await _existing(db[names.commands])
    await _ensure_plain(db, names.commands, commands, [COMMAND_QUEUE, COMMAND_EXPIRY], report)
    if config.rejected_frames.enabled:
        from waygps.rejected import ensure_collection

        report["created"].extend(await ensure_collection(store, config))
    return report


def ensure_indexes(store: Any, config: Config) -> Deferred:
    """Deferred[dict]: what was ``created`` / ``changed``, what was ``kept`` although not wanted
    (the history ``2dsphere`` with ``history_geo_index`` off), and ``problems`` left to an operator."""
    return ensureDeferred(_ensure(store, config))
