"""The ``Comando`` queue in MongoDB (txmongo): reads, atomic claims and status changes.

Every status change is one ``find_one_and_update`` whose filter names the
status it leaves, so two instances (or a timer and an acknowledgement) never
both move the same command; the loser gets ``None``. Documents come back with
aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from bson import ObjectId
from pymongo.collection import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from txmongo import filter as qf

from waygps.commands.record import FINAL, OPEN, PENDING, SENT, push_history

OLDEST_FIRST = qf.sort(qf.ASCENDING("createdAt") + qf.ASCENDING("_id"))
NEWEST_FIRST = qf.sort(qf.DESCENDING("createdAt") + qf.DESCENDING("_id"))
SENT_FIRST = qf.sort(qf.ASCENDING("sentAt") + qf.ASCENDING("_id"))

log = Logger(namespace="waygps.commands")

# What a poll looks for: one query per intent field, each answered from that field's index (an
# ``$or``, or ``$ne: null``, is a collection scan on some stores). Values these miss (a malformed
# ``comandoBloqueo: "yes"``, an empty or non-string ``comandoTrocarIP``) are found by the slower
# ``ANY_INTENT`` sweep, which the service runs now and then.
INTENT_QUERIES = ({"comandoBloqueo": {"$in": [True, False]}}, {"comandoTrocarIP": {"$gt": ""}})
ANY_INTENT = {"$or": [{"comandoBloqueo": {"$ne": None}}, {"comandoTrocarIP": {"$ne": None}}]}

# IndexOptionsConflict, IndexKeySpecsConflict: the same key already indexed under another name/options.
INDEX_CONFLICTS = (85, 86)

# Bounds on what one query brings into memory.
BATCH = 500
SERIAL_HISTORY = 100


def aware(doc: Any) -> Any:
    """txmongo returns naive datetimes (UTC): make them aware, recursively."""
    if isinstance(doc, datetime):
        return doc if doc.tzinfo is not None else doc.replace(tzinfo=timezone.utc)
    if isinstance(doc, dict):
        return {k: aware(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [aware(v) for v in doc]
    return doc


def _sent_order(doc: Mapping[str, Any]) -> tuple:
    sent_at = doc.get("sentAt")
    if not isinstance(sent_at, datetime):
        sent_at = datetime.min.replace(tzinfo=timezone.utc)
    return sent_at, str(doc.get("_id"))


def id_candidates(command_id: str) -> list[Any]:
    """A command id as text may be an ObjectId's hex or a string ``_id``: try both."""
    out: list[Any] = [command_id]
    if ObjectId.is_valid(command_id):
        out.append(ObjectId(command_id))
    return out


class CommandQueue:
    """The command and vehicle collections, as the command service uses them."""

    def __init__(self, commands: Any, vehicles: Any) -> None:
        self.commands = commands
        self.vehicles = vehicles

    # --- setup -------------------------------------------------------------
    @inlineCallbacks
    def ensure_indexes(self) -> Any:
        """The queue's indexes, under MongoDB's default names (the persistence service creates
        the first two as well; an equal index under another name is left alone)."""
        specs = [
            (self.commands, (("IMEI", 1), ("status", 1), ("createdAt", 1)), {}),
            (self.commands, (("status", 1), ("expiresAt", 1)), {}),
            (self.commands, (("status", 1), ("sentAt", 1)), {}),
            # At most one open command per device and intent field, across instances.
            (self.commands, (("IMEI", 1), ("intentOpen", 1)),
             {"unique": True, "partialFilterExpression": {"intentOpen": {"$exists": True}}}),
            (self.vehicles, (("comandoBloqueo", 1),), {"sparse": True}),
            (self.vehicles, (("comandoTrocarIP", 1),), {"sparse": True}),
        ]
        for collection, key, options in specs:
            try:
                yield collection.create_index(qf.sort(list(key)), **options)
            except OperationFailure as e:
                if e.code not in INDEX_CONFLICTS:
                    raise
                log.info("commands: index {key} on {collection} exists in another form; kept ({error})",
                         key=dict(key), collection=collection.name, error=e)

    # --- reads -------------------------------------------------------------
    @inlineCallbacks
    def get(self, command_id: Any) -> Any:
        doc = yield self.commands.find_one({"_id": command_id})
        return aware(doc) if doc else None

    # Every query below is answered by an index of ``ensure_indexes`` on its own: equality on
    # ``IMEI`` (never ``IMEI $in``), or ``status`` with a range; what else must hold is checked here.
    # The embedded store scans the whole collection for a query an index cannot answer alone, and
    # these run at every poll, connection and acknowledgement.

    @inlineCallbacks
    def pending_for(self, imei: str, limit: int = BATCH) -> Any:
        docs = yield self.commands.find({"IMEI": imei, "status": PENDING}, limit=limit, sort=OLDEST_FIRST)
        return [aware(d) for d in docs]

    @inlineCallbacks
    def pending_devices(self, imeis: Iterable[str], limit: int = BATCH * 10) -> Any:
        """``(devices with pending commands, number of their pending commands)`` among ``imeis``."""
        wanted = set(imeis)
        if not wanted:
            return set(), 0
        docs = yield self.commands.find({"status": PENDING}, projection={"IMEI": 1}, limit=limit)
        mine = [d["IMEI"] for d in docs if d.get("IMEI") in wanted]
        return set(mine), len(mine)

    @inlineCallbacks
    def with_open_commands(self, imeis: list[str]) -> Any:
        """Which of ``imeis`` have a ``pending`` or ``sent`` command (one query for many devices)."""
        found = yield self.commands.distinct("IMEI", {"IMEI": {"$in": imeis}, "status": {"$in": [PENDING, SENT]}})
        return set(found)

    @inlineCallbacks
    def in_flight(self, imei: str) -> Any:
        doc = yield self.commands.find_one({"IMEI": imei, "status": SENT})
        return aware(doc) if doc else None

    @inlineCallbacks
    def open_for(self, imei: str) -> Any:
        docs = yield self.commands.find({"IMEI": imei, "status": {"$in": list(OPEN)}}, sort=OLDEST_FIRST)
        return [aware(d) for d in docs]

    @inlineCallbacks
    def recent_serials(self, imei: str) -> Any:
        docs = yield self.commands.find({"IMEI": imei}, projection={"serials": 1}, limit=SERIAL_HISTORY,
                                        sort=NEWEST_FIRST)
        used: set[str] = set()
        for doc in docs:
            used.update(s for s in doc.get("serials") or () if isinstance(s, str))
        return used

    @inlineCallbacks
    def sent(self, query: Mapping[str, Any], limit: int = BATCH) -> Any:
        """``sent`` commands matching ``query`` (for the scan at startup)."""
        docs = yield self.commands.find({**query, "status": SENT}, limit=limit, sort=SENT_FIRST)
        return [aware(d) for d in docs]

    @inlineCallbacks
    def sent_to(self, imei: str) -> Any:
        """The device's ``sent`` commands, oldest first (one or two: one is in flight at a time)."""
        docs = yield self.commands.find({"IMEI": imei, "status": SENT}, limit=BATCH)
        return sorted((aware(d) for d in docs), key=_sent_order)

    @inlineCallbacks
    def overdue(self, now: datetime, instance: str, ack_timeout: float, abandoned_after: float) -> Any:
        """``sent`` commands past their ack timeout: this instance's, and any instance's long abandoned."""
        due = now - timedelta(seconds=min(ack_timeout, abandoned_after))
        abandoned = now - timedelta(seconds=abandoned_after)
        docs = yield self.commands.find({"status": SENT, "sentAt": {"$lte": due}}, limit=BATCH, sort=SENT_FIRST)
        out = []
        for doc in map(aware, docs):
            sent_at = doc.get("sentAt")
            if doc.get("instance") == instance:
                if sent_at <= now - timedelta(seconds=ack_timeout):
                    out.append(doc)
            elif sent_at <= abandoned:
                out.append(doc)
        return out

    @inlineCallbacks
    def expired_pending(self, now: datetime, limit: int = BATCH) -> Any:
        docs = yield self.commands.find({"status": PENDING, "expiresAt": {"$lte": now}}, limit=limit)
        return [aware(d) for d in docs]

    @inlineCallbacks
    def unqueued(self, limit: int = BATCH) -> Any:
        """Documents operators inserted without ``status`` or ``expiresAt`` (``None`` matches missing)."""
        docs = yield self.commands.find({"status": None}, limit=limit)
        docs += yield self.commands.find({"status": PENDING, "expiresAt": None}, limit=limit)
        return [aware(d) for d in docs]

    @inlineCallbacks
    def match_ack(self, imei: str, command_id: str | None, serial: str | None, instance: str) -> Any:
        """The command an acknowledgement answers: by id, else by serial, else the oldest in flight here.

        Returns a list of candidates (the caller checks the command word);
        with an id the command is returned whatever its status, so a late or
        repeated answer is recognised as such.
        """
        if command_id:
            for candidate in id_candidates(command_id):
                doc = yield self.commands.find_one({"_id": candidate})
                if doc and doc.get("IMEI") == imei:
                    return [aware(doc)]
            return []
        docs = yield self.commands.find({"IMEI": imei, "status": {"$in": list(OPEN)}}, limit=BATCH)
        docs = [aware(d) for d in docs]
        if serial:
            serials = {serial.upper()}
            found = [d for d in docs if serials & {s.upper() for s in d.get("serials") or () if isinstance(s, str)}]
            return sorted(found, key=_sent_order, reverse=True)[:10]
        here = [d for d in docs if d.get("status") == SENT and d.get("instance") == instance]
        return sorted(here, key=_sent_order)[:1]

    # --- writes ------------------------------------------------------------
    @inlineCallbacks
    def insert(self, doc: dict[str, Any]) -> Any:
        """Insert ``doc``; ``None`` when the one-open-intent index says it exists already."""
        try:
            yield self.commands.insert_one(doc)
        except DuplicateKeyError:
            return None
        return aware(doc)

    @inlineCallbacks
    def move(self, command_id: Any, leaving: Iterable[str], status: str, now: datetime, reason: str,
             set_fields: Mapping[str, Any] | None = None, unset: Iterable[str] = (),
             inc: Mapping[str, int] | None = None, match: Mapping[str, Any] | None = None) -> Any:
        """Status change ``leaving -> status`` with a history entry; the new document, or ``None``."""
        update: dict[str, Any] = {
            "$set": {"status": status, "updatedAt": now, **(set_fields or {})},
            "$push": push_history(status, now, reason),
        }
        drop = set(unset)
        if status in FINAL:
            drop.add("intentOpen")
            drop.update(("waiting", "waitingFor"))
        if drop:
            update["$unset"] = {name: "" for name in drop}
        if inc:
            update["$inc"] = dict(inc)
        query = {**(match or {}), "_id": command_id, "status": {"$in": list(leaving)}}
        doc = yield self.commands.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        return aware(doc) if doc else None

    @inlineCallbacks
    def claim(self, doc: Mapping[str, Any], now: datetime, instance: str, serial: str, connection: Any,
              reason: str) -> Any:
        """``pending -> sent`` for this instance, counting the attempt; ``None`` if someone else moved it."""
        update = {
            "$set": {"status": SENT, "updatedAt": now, "sentAt": now, "serial": serial, "instance": instance,
                     "protocol": connection.protocol, "peer": connection.peer, "listener": connection.listener,
                     "error": None},
            "$inc": {"attempts": 1},
            "$push": {**push_history(SENT, now, reason), "serials": serial},
            "$unset": {"waiting": "", "waitingFor": ""},
        }
        query = {"_id": doc["_id"], "status": PENDING,
                 "$or": [{"expiresAt": {"$gt": now}}, {"expiresAt": {"$exists": False}}]}
        claimed = yield self.commands.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        return aware(claimed) if claimed else None

    def record_frame(self, command_id: Any, frame: str) -> Deferred:
        return self.commands.update_one({"_id": command_id}, {"$set": {"frame": frame}})

    def set_waiting(self, doc: Mapping[str, Any], now: datetime, reason: str, kind: str,
                    new_kind: bool) -> Deferred:
        """Show why a pending command is held back; a history entry when the kind of wait changes."""
        update: dict[str, Any] = {"$set": {"waiting": reason, "waitingFor": kind, "updatedAt": now}}
        if new_kind:
            update["$push"] = push_history(PENDING, now, f"waiting: {reason}")
        return self.commands.update_one({"_id": doc["_id"], "status": PENDING}, update)

    def clear_waiting(self, doc: Mapping[str, Any]) -> Deferred:
        return self.commands.update_one({"_id": doc["_id"], "status": PENDING}, {"$unset": {"waiting": "", "waitingFor": ""}})

    def complete(self, doc: Mapping[str, Any], now: datetime, reason: str) -> Deferred:
        """Fill in what an operator's hand-inserted command lacks, as ``pending``."""
        fields: dict[str, Any] = {"status": PENDING, "updatedAt": now}
        for name, value in (("createdAt", now), ("attempts", 0), ("serials", []), ("serial", None)):
            if name not in doc:
                fields[name] = value
        return self.commands.find_one_and_update(
            {"_id": doc["_id"], "$or": [{"status": None}, {"status": PENDING}]},
            {"$set": fields, "$push": push_history(PENDING, now, reason)},
            return_document=ReturnDocument.AFTER,
        ).addCallback(lambda d: aware(d) if d else None)

    def set_expiry(self, command_id: Any, expires: datetime) -> Deferred:
        return self.commands.update_one({"_id": command_id, "expiresAt": {"$exists": False}},
                                        {"$set": {"expiresAt": expires}})

    # --- vehicles ----------------------------------------------------------
    @inlineCallbacks
    def vehicle(self, imei: str) -> Any:
        doc = yield self.vehicles.find_one({"IMEI": imei})
        return aware(doc) if doc else None

    @inlineCallbacks
    def vehicles_with_intents(self, query: Mapping[str, Any], after: Any = None, limit: int = BATCH) -> Any:
        """One page (by ``_id``, after ``after``) of the vehicles matching ``query`` (one of
        :data:`INTENT_QUERIES`, or :data:`ANY_INTENT`)."""
        if after is not None:
            query = {"$and": [query, {"_id": {"$gt": after}}]}
        docs = yield self.vehicles.find(
            query, projection={"IMEI": 1, "comandoBloqueo": 1, "comandoTrocarIP": 1, "bloqueado": 1},
            limit=limit, sort=qf.sort(qf.ASCENDING("_id")))
        return [aware(d) for d in docs]

    def set_blocked(self, imei: str, blocked: bool) -> Deferred:
        return self.vehicles.update_one({"IMEI": imei}, {"$set": {"bloqueado": blocked}})

    def clear_intent(self, imei: str, field: str, value: Any) -> Deferred:
        """Set the intent to null, only if it still holds ``value`` (an operator may have changed it)."""
        return self.vehicles.update_one({"IMEI": imei, field: value}, {"$set": {field: None}})
