"""Operators' intents on ``Veiculo`` -> commands in ``Comando``.

``comandoBloqueo`` true / false (differing from ``bloqueado``) becomes a
block / unblock command, a ``comandoTrocarIP`` "host:port" a set_server
command. :func:`plan` decides from the vehicle and its open commands (pure);
:func:`apply` carries the plan out. Idempotent: a command created for an
intent carries ``intentOpen`` while open, and a unique index allows one open
command per device and intent field, so polling twice, or two instances
polling, create it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from attrs import frozen
from twisted.internet.defer import inlineCallbacks

from waygps.commands.record import (
    BLOCK_INTENT, FAILED, PENDING, SENT, SERVER_INTENT, InvalidCommand, history_entry, new_command, parse_server,
    server_text,
)


@frozen
class Create:
    field: str
    value: Any
    type: str
    params: Mapping[str, Any]
    reason: str


@frozen
class Supersede:
    """A pending command of this intent that the intent no longer wants."""

    doc: Mapping[str, Any]
    reason: str


@frozen
class Clear:
    """Set the intent field to null (already satisfied)."""

    field: str
    value: Any
    reason: str


@frozen
class Reject:
    """An intent value that cannot become a command: recorded as a failed command, then cleared."""

    field: str
    value: Any
    type: str
    reason: str


Op = Create | Supersede | Clear | Reject


def _of_intent(doc: Mapping[str, Any], field: str) -> bool:
    return doc.get("intentOpen") == field or (doc.get("intent") or {}).get("field") == field


def plan(vehicle: Mapping[str, Any], open_commands: Sequence[Mapping[str, Any]]) -> list[Op]:
    """What the vehicle's intents ask for, given its ``pending`` / ``sent`` commands."""
    return _block(vehicle, open_commands) + _server(vehicle, open_commands)


def _block(vehicle: Mapping[str, Any], open_commands: Sequence[Mapping[str, Any]]) -> list[Op]:
    value = vehicle.get(BLOCK_INTENT)
    if value is None:
        return []
    if not isinstance(value, bool):
        return [Reject(BLOCK_INTENT, value, "block",
                       f"{BLOCK_INTENT} must be true, false or null, got {value!r}")]
    wanted = "block" if value else "unblock"
    relevant = [c for c in open_commands if c.get("type") in ("block", "unblock")]
    ops: list[Op] = []
    if any(c.get("type") == wanted for c in relevant):
        return ops  # an open command already carries it (ours or an operator's)
    contrary = [c for c in relevant if c.get("type") != wanted]
    for doc in contrary:
        if _of_intent(doc, BLOCK_INTENT) and doc.get("status") == PENDING:
            ops.append(Supersede(doc, f"superseded: {BLOCK_INTENT} is now {str(value).lower()}"))
    if any(_of_intent(c, BLOCK_INTENT) and c.get("status") == SENT for c in contrary):
        return ops  # its answer comes first; the new command follows it
    if not contrary and vehicle.get("bloqueado") is value:
        return [Clear(BLOCK_INTENT, value, f"already {'blocked' if value else 'unblocked'}")]
    ops.append(Create(BLOCK_INTENT, value, wanted, {}, f"queued from Veiculo.{BLOCK_INTENT}={str(value).lower()}"))
    return ops


def _server(vehicle: Mapping[str, Any], open_commands: Sequence[Mapping[str, Any]]) -> list[Op]:
    value = vehicle.get(SERVER_INTENT)
    if value is None:
        return []
    try:
        params = parse_server(value)
    except InvalidCommand as e:
        return [Reject(SERVER_INTENT, value, "set_server", f"{SERVER_INTENT}: {e}")]
    relevant = [c for c in open_commands if c.get("type") == "set_server"]
    if any(server_text(c.get("params") or {}) == server_text(params) for c in relevant):
        return []
    ops: list[Op] = []
    mine = [c for c in relevant if _of_intent(c, SERVER_INTENT)]
    for doc in mine:
        if doc.get("status") == PENDING:
            ops.append(Supersede(doc, f"superseded: {SERVER_INTENT} is now {value}"))
    if any(c.get("status") == SENT for c in mine):
        return ops
    ops.append(Create(SERVER_INTENT, value, "set_server", params, f"queued from Veiculo.{SERVER_INTENT}={value}"))
    return ops


def command_for(imei: str, op: Create, now: datetime, expiry_hours: float) -> dict[str, Any]:
    doc = new_command(imei, op.type, op.params, now, expiry_hours, source="intent", reason=op.reason)
    doc["intent"] = {"field": op.field, "value": op.value}
    doc["intentOpen"] = op.field
    return doc


def rejected_command(imei: str, op: Reject, now: datetime, expiry_hours: float) -> dict[str, Any]:
    """The failed record of an intent that could not be understood, so operators see why."""
    return {
        "IMEI": imei, "type": op.type, "params": {"value": op.value}, "status": FAILED,
        "createdAt": now, "updatedAt": now, "expiresAt": now + timedelta(hours=expiry_hours),
        "attempts": 0, "serial": None, "serials": [], "sentAt": None, "confirmedAt": None, "response": None,
        "error": op.reason, "source": "intent", "intent": {"field": op.field, "value": op.value},
        "history": [history_entry(FAILED, now, op.reason)],
    }


@inlineCallbacks
def apply(queue: Any, imei: str, ops: Sequence[Op], now: datetime, expiry_hours: float,
          changed: Any) -> Any:
    """Carry out ``ops``; ``changed(doc, status, reason)`` is told of every command created or closed."""
    for op in ops:
        if isinstance(op, Supersede):
            doc = yield queue.move(op.doc["_id"], (PENDING,), FAILED, now, op.reason, set_fields={"error": op.reason})
            if doc is not None:
                changed(doc, FAILED, op.reason)
        elif isinstance(op, Create):
            doc = yield queue.insert(command_for(imei, op, now, expiry_hours))
            if doc is not None:
                changed(doc, PENDING, op.reason)
        elif isinstance(op, Clear):
            yield queue.clear_intent(imei, op.field, op.value)
        elif isinstance(op, Reject):
            doc = yield queue.insert(rejected_command(imei, op, now, expiry_hours))
            yield queue.clear_intent(imei, op.field, op.value)
            if doc is not None:
                changed(doc, FAILED, op.reason)
