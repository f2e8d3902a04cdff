"""Position blocks found by their shape, wherever a report puts them (protocol §2.4).

Queclink models and firmware add fields before a block (a model name, a VIN, a
CAN or OBD mask, a battery level), put several blocks in one report, or put
Wi-Fi access points between the fix time and the cell. A block is recognised
by its seven core fields - accuracy, speed, course, altitude, longitude,
latitude, GPS time - each of the form the protocol gives it, then a cell block
(MCC, MNC, LAC, cell ID, reserved) when one follows. ``next_block`` returns
where the next block starts; ``reports`` parses it with the same code as a
block at a fixed index. Nothing here imports Twisted.
"""

from __future__ import annotations

from waygps.drivers.gv50.parse import is_hex

CORE = 7  # accuracy, speed, course, altitude, longitude, latitude, GPS time
CELL = 5  # MCC, MNC, LAC, cell ID, reserved / append mask
NO_CELL = 0  # ``cell_at`` when the block has no cell part
MAX_WIFI = 30  # access points a report can list before its cell block
WIFI_FIELDS = 5  # MAC, RSSI and three reserved fields per access point

_DIGITS = frozenset("0123456789")


def _unsigned(text: str, limit: int) -> bool:
    """Empty, or digits with at most one decimal point, at most ``limit`` characters."""
    if not text:
        return True
    if len(text) > limit:
        return False
    whole, _, fraction = text.partition(".")
    return (bool(whole) and set(whole) <= _DIGITS) and (not fraction or set(fraction) <= _DIGITS)


def _signed(text: str, limit: int) -> bool:
    return _unsigned(text[1:] if text[:1] == "-" else text, limit)


def _coordinate(text: str) -> bool:
    """A coordinate as devices write it: signed, with a decimal point (``-62.899703``)."""
    if not 3 <= len(text) <= 12 or "." not in text:
        return False
    return _signed(text, 12)


def _integer(text: str, limit: int) -> bool:
    return not text or (len(text) <= limit and set(text) <= _DIGITS)


def core_at(fields: list[str], start: int) -> bool:
    """The seven core fields of a block start at ``start`` (the time at ``start + 6`` is checked)."""
    accuracy, speed, course, altitude, longitude, latitude, when = fields[start:start + CORE]
    return (len(when) == 14 and when.isascii() and when.isdigit() and _coordinate(longitude)
            and _coordinate(latitude) and _integer(accuracy, 3) and _unsigned(speed, 7)
            and _integer(course, 3) and _signed(altitude, 9))


def cell_at(fields: list[str], start: int, stop: int) -> bool:
    """A cell part (MCC, MNC, LAC, cell ID, reserved) starts at ``start`` and ends before ``stop``."""
    if start + CELL > stop:
        return False
    mcc, mnc, lac, cell, _ = fields[start:start + CELL]
    return (_integer(mcc, 4) and _integer(mnc, 4) and (not lac or (len(lac) <= 8 and is_hex(lac)))
            and (not cell or (len(cell) <= 15 and is_hex(cell))))


def _mac(text: str) -> bool:
    return len(text) == 12 and is_hex(text)


def wifi_after(fields: list[str], start: int, stop: int) -> int:
    """Access points listed at ``start`` (a count, then MAC/RSSI blocks): how many, 0 if none."""
    text = fields[start] if start < stop else ""
    if not (0 < len(text) <= 2 and text.isascii() and text.isdigit()):
        return 0
    count = int(text)
    if not 0 < count <= MAX_WIFI or start + 1 + WIFI_FIELDS * count > stop:
        return 0
    for number in range(count):
        if not _mac(fields[start + 1 + WIFI_FIELDS * number]):
            return 0
    return count


def next_block(fields: list[str], start: int, stop: int) -> tuple[int, int, int] | None:
    """The next block at or after ``start`` whose fields end before ``stop``.

    Returns ``(core start, cell start or NO_CELL, Wi-Fi access points)`` or None.
    """
    index = start + CORE - 1
    while index < stop:
        when = fields[index]
        if len(when) == 14 and when.isdigit() and core_at(fields, index - CORE + 1):
            core = index - CORE + 1
            after = index + 1
            wifi = wifi_after(fields, after, stop)
            if wifi:
                after += 1 + WIFI_FIELDS * wifi
            return core, (after if cell_at(fields, after, stop) else NO_CELL), wifi
        index += 1
    return None


def access_points(fields: list[str], core: int, count: int) -> list[dict[str, object]]:
    """The Wi-Fi access points listed after the fix time of the block at ``core``."""
    out: list[dict[str, object]] = []
    first = core + CORE + 1
    for number in range(count):
        mac, rssi = fields[first + WIFI_FIELDS * number:first + WIFI_FIELDS * number + 2]
        point: dict[str, object] = {"mac": mac.upper()}
        if rssi[1:].isdigit() and rssi[:1] in "-0123456789" and len(rssi) <= 4:
            point["rssi"] = int(rssi)
        out.append(point)
    return out
