"""``waygps simulate``: a fleet of simulated GV50, Teltonika and generic devices.

* :mod:`~waygps.simulate.track`: where a vehicle is (plausible drives, ignition cycles, GPX roads);
* :mod:`~waygps.simulate.device` and one module per protocol: what a device sends and how it
  treats acknowledgements and commands (sans-IO, time is an argument);
* :mod:`~waygps.simulate.fleet`: the Twisted runner (connections, ramp-up, timers, reconnects);
* :mod:`~waygps.simulate.stats`: the counters and the acknowledgement latency.
"""

from __future__ import annotations

from waygps.simulate.device import DeviceModel
from waygps.simulate.generic import GenericDevice
from waygps.simulate.gv50 import Gv50Device
from waygps.simulate.teltonika import TeltonikaDevice

MODELS: dict[str, type[DeviceModel]] = {
    "gv50": Gv50Device,
    "teltonika": TeltonikaDevice,
    "generic": GenericDevice,
}

__all__ = ["MODELS", "DeviceModel", "GenericDevice", "Gv50Device", "TeltonikaDevice"]
