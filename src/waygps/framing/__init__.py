"""Building blocks for a driver's codec: framers and the value helpers every GPS protocol needs.

Everything here is sans-IO (no Twisted, no clock): a codec owns one framer per
connection, feeds it the bytes it receives and turns the ``Piece`` objects it gets
back into actions. See ``docs/writing-a-driver.md``.
"""

from waygps.framing.binary import BAD_LENGTH, BAD_PREAMBLE, BAD_TRAILER, LengthPrefixedFramer, PreambleFramer
from waygps.framing.budget import GarbageBudget
from waygps.framing.coordinates import (
    KNOT_KMH,
    ddmm_to_degrees,
    degrees_to_ddmm,
    hemisphere_sign,
    knots_to_kmh,
    mph_to_kmh,
)
from waygps.framing.pieces import EXCERPT, FRAME, NOISE, OVERSIZE, UNTERMINATED, Piece
from waygps.framing.text import TextFramer
from waygps.framing.times import DeviceTime, from_epoch, plausible_time, time_problem

__all__ = [
    "BAD_LENGTH", "BAD_PREAMBLE", "BAD_TRAILER", "DeviceTime", "EXCERPT", "FRAME", "GarbageBudget", "KNOT_KMH",
    "LengthPrefixedFramer", "NOISE", "OVERSIZE", "Piece", "PreambleFramer", "TextFramer", "UNTERMINATED",
    "ddmm_to_degrees", "degrees_to_ddmm", "from_epoch", "hemisphere_sign", "knots_to_kmh", "mph_to_kmh",
    "plausible_time", "time_problem",
]
