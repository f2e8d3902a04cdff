"""What to do with a command, decided from its document and the time (no I/O).

Every function takes ``now`` (an aware UTC datetime) and plain documents, so
retries, expiry and the speed guard are tested without a store or a reactor.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from attrs import frozen

from waygps.commands.model import COMMAND_TYPES
from waygps.commands.record import EXPIRED, FAILED, PENDING, InvalidCommand, normalize
from waygps.config import CommandsConfig

# Commands that keep their order behind a waiting engine cut: a custom command may switch the
# output back (or on again), so it must not overtake it.
ORDERED_TYPES = ("block", "unblock", "custom")

# A command another instance sent is considered abandoned (its instance
# stopped) once this many ack timeouts have passed without a decision.
ABANDONED_FACTOR = 2.0


@frozen
class Send:
    """Write this command now (the first one the device can take)."""

    doc: Mapping[str, Any]


@frozen
class Wait:
    """Keep it pending, with the reason shown to operators in ``waiting``."""

    doc: Mapping[str, Any]
    reason: str
    kind: str  # "speed" (the speed guard) or "order" (behind a held block/unblock)


@frozen
class Queue:
    """Keep it pending behind the command being sent (one command in flight per device)."""

    doc: Mapping[str, Any]


@frozen
class Finish:
    """Close it without sending: ``expired`` or ``failed``."""

    doc: Mapping[str, Any]
    status: str
    reason: str


Decision = Send | Wait | Queue | Finish


def expires_at(doc: Mapping[str, Any], config: CommandsConfig) -> datetime | None:
    expires = doc.get("expiresAt")
    if isinstance(expires, datetime):
        return expires
    created = doc.get("createdAt")
    if isinstance(created, datetime):
        return created + timedelta(hours=config.expiry_hours)
    return None


@frozen
class Motion:
    """What the speed guard knows of a vehicle's movement (see docs/commands.md, "Safety").

    ``speed_at`` is when ``speed`` was true: the fix time, but never later than
    when WayGPS received it (a device clock running ahead cannot make an old
    speed look fresh). ``ignition`` / ``ignition_at`` likewise.
    """

    speed: float | None = None
    speed_at: datetime | None = None
    ignition: bool | None = None
    ignition_at: datetime | None = None


def _fresh(at: datetime | None, now: datetime, max_age: float) -> bool:
    return at is not None and (now - at).total_seconds() <= max_age


def speed_guard(motion: Motion, now: datetime, limit: float, max_age: float, force: bool = False) -> str | None:
    """Why an engine cut must wait, or ``None`` when it may go out.

    * ``limit`` 0 disables the guard.
    * A speed no older than ``max_age`` seconds decides: above ``limit`` km/h waits (even when
      forced: no override cuts the engine of a vehicle known to move).
    * Without a fresh speed, a fresh report of the ignition being off counts as stopped.
    * Otherwise the movement is unknown (no speed, or a stale one): it waits, unless ``force``
      (the operator's explicit override, logged by the caller).
    """
    if limit <= 0:
        return None
    if motion.speed is not None and _fresh(motion.speed_at, now, max_age):
        if motion.speed > limit:
            return (f"vehicle moving: last known speed {motion.speed:g} km/h is above the {limit:g} km/h "
                    f"block limit")
        return None
    if motion.ignition is False and _fresh(motion.ignition_at, now, max_age):
        return None
    if force:
        return None
    if motion.speed is None or motion.speed_at is None:
        known = "no speed reported"
    else:
        age = (now - motion.speed_at).total_seconds()
        known = f"last speed {motion.speed:g} km/h is {age:.0f} s old (older than {max_age:g} s)"
    return f"vehicle movement unknown: {known}; waits for a fresh report at or below {limit:g} km/h " \
           f"(or an explicit override: force)"


def cuts_by_type(doc: Mapping[str, Any]) -> bool:
    """The default when no driver was asked: only ``block`` cuts the engine."""
    return doc.get("type") == "block"


def plan(pending: Sequence[Mapping[str, Any]], now: datetime, motion: Motion | None,
         config: CommandsConfig, cuts_engine: Callable[[Mapping[str, Any]], bool] = cuts_by_type) -> list[Decision]:
    """One decision per pending command of one connected device, oldest first.

    At most one :class:`Send`. Every command that ``cuts_engine`` (the device's driver
    says so: ``block``, a custom ``AT+GTOUT`` or ``setdigout`` that sets an output...)
    passes the speed guard. A block, unblock or custom command never overtakes an
    earlier one of these that waits, so the last intent wins; other commands (a
    position request...) may go out while an engine cut waits.
    """
    decisions: list[Decision] = []
    chosen = False
    held: str | None = None
    motion = motion or Motion()
    for doc in pending:
        expires = expires_at(doc, config)
        if expires is not None and expires <= now:
            decisions.append(Finish(doc, EXPIRED, f"not delivered before {expires:%Y-%m-%d %H:%M:%S} UTC"))
            continue
        try:
            normalize(doc.get("type"), doc.get("params"))
        except InvalidCommand as e:
            decisions.append(Finish(doc, FAILED, f"invalid command: {e}"))
            continue
        cut = doc.get("type") == "block" or cuts_engine(doc)
        ordered = cut or doc.get("type") in ORDERED_TYPES
        if ordered and held is not None:
            decisions.append(Wait(doc, f"waiting behind the earlier block/unblock command {held}", "order"))
            continue
        if cut:
            reason = speed_guard(motion, now, config.block_max_speed_kmh, config.block_speed_max_age,
                                 force=doc.get("force") is True)
            if reason is not None:
                decisions.append(Wait(doc, reason, "speed"))
                held = str(doc.get("_id"))
                continue
        if chosen:
            decisions.append(Queue(doc))
            continue
        decisions.append(Send(doc))
        chosen = True
    return decisions


def forced_past_unknown(doc: Mapping[str, Any], motion: Motion | None, now: datetime,
                        config: CommandsConfig) -> bool:
    """Whether sending ``doc`` (an engine cut) now relies on its ``force`` override."""
    if doc.get("force") is not True:
        return False
    return speed_guard(motion or Motion(), now, config.block_max_speed_kmh, config.block_speed_max_age) is not None


MAX_LINK_LOSSES = 10  # sends that ended with the link (or WayGPS) gone, before they count as attempts


def link_lost_is_free(doc: Mapping[str, Any]) -> bool:
    """Whether a send that ended because the connection closed or WayGPS restarted may be given
    back: a flaky mobile link or two deploys must not use up a stolen vehicle's block. Bounded,
    so a command that makes the device drop its link (a reboot) still ends."""
    return int(doc.get("linkLosses") or 0) < MAX_LINK_LOSSES


def after_lost_ack(doc: Mapping[str, Any], now: datetime, config: CommandsConfig, why: str,
                   attempt_counts: bool = True) -> tuple[str, str]:
    """A ``sent`` command lost its chance of an acknowledgement: retry, fail or expire.

    ``why``: the ack timed out, the connection closed, WayGPS restarted. An ack
    timeout uses up the attempt; a lost link does not (``attempt_counts`` False),
    and expiry still bounds the command.
    """
    attempts = int(doc.get("attempts") or 0) - (0 if attempt_counts else 1)
    expires = expires_at(doc, config)
    if expires is not None and expires <= now:
        return EXPIRED, f"{why}; expired"
    if attempts >= config.max_attempts:
        return FAILED, f"{why}; no acknowledgement after {attempts} attempt(s)"
    if not attempt_counts:
        return PENDING, f"{why}; will be sent again (this send does not count as an attempt)"
    return PENDING, f"{why}; will be sent again (attempt {attempts} of {config.max_attempts} done)"


def pick_serial(used: set[str], rng: random.Random) -> str:
    """Four hex digits not used by the device's recent commands (GV50 echoes them in ``+ACK``)."""
    taken = {s.upper() for s in used if isinstance(s, str)}
    for _ in range(64):
        serial = f"{rng.randrange(1, 0x10000):04X}"
        if serial not in taken:
            return serial
    for value in range(1, 0x10000):
        serial = f"{value:04X}"
        if serial not in taken:
            return serial
    return "0001"


def ack_fits(doc: Mapping[str, Any], command_type: str | None) -> bool:
    """Does an acknowledgement naming ``command_type`` answer this command?

    ``command_type`` is either one of our types (``set_server``...: must be the
    command's, except for a ``custom`` command, which may be any of them) or a
    protocol word (``GTOUT``), checked against the frame that was written.
    Without either, the serial alone decides.
    """
    if not command_type:
        return True
    if command_type in COMMAND_TYPES:
        return command_type == doc.get("type") or doc.get("type") == "custom"
    frame = doc.get("frame")
    if not isinstance(frame, str) or not frame:
        return True
    return command_type.upper() in frame.upper()


def ack_outcome(doc: Mapping[str, Any], success: bool, response: str) -> tuple[str, str]:
    """``(status, reason)`` for the device's answer."""
    text = response if response else "(no text)"
    if success:
        return "confirmed", f"acknowledged by the device: {text}"
    return FAILED, f"refused by the device: {text}"
