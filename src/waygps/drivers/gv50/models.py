"""Queclink device-type codes (the first characters of the protocol version) -> model names.

Data from the protocol reference (gv50-protocol.md §2.2). The GV50's own code is
unconfirmed; ``09`` is the GV50 Plus. Unknown codes give no model name.
"""

from __future__ import annotations

MODELS: dict[str, str] = {
    "02": "GL200", "21": "GL200", "04": "GV200", "35": "GV200", "08": "GMT100", "3F": "GMT100",
    "09": "GV50P", "0F": "GV55", "2F": "GV55", "10": "GV55 LITE", "11": "GL500", "40": "GL500",
    "31": "GV65", "6E": "GV310LAU", "1F": "GV500", "36": "GV500", "25": "GV300", "06": "GV300",
    "27": "GV300W", "28": "GL300VC", "2C": "GL300W", "2D": "GV500VC", "30": "GL300", "1A": "GL300",
    "41": "GV75W", "BD": "CV200", "42": "GT501", "44": "GL530", "45": "GB100", "4F": "GV56",
    "50": "GV55W", "52": "GL50", "55": "GL50B", "5E": "GV500MAP", "C2": "GV600M", "C3": "GL320M",
    "DC": "GV600MG", "DE": "GL500M", "DF": "CV100LG", "F1": "GV350M", "F8": "GV800W", "FC": "GV600W",
    "802004": "GV58LAU", "802005": "GV355CEU", "80201E": "GV30CEU",
}


def model_name(device_type: str) -> str | None:
    return MODELS.get(device_type.upper())
