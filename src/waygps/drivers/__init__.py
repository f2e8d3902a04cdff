"""Driver discovery: built-in and third-party drivers alike, through Twisted's plugin system.

Nothing is imported at module level, so importing a codec (``waygps.drivers.gv50.codec``) does not
pull in Twisted.
"""

from __future__ import annotations

from typing import Any


def find_drivers() -> dict[str, Any]:
    """Every installed ``IDriver`` plugin by name (``twisted/plugins/*.py`` on ``sys.path``)."""
    from twisted.logger import Logger
    from twisted.plugin import getPlugins

    from waygps.interfaces import IDriver

    log = Logger(namespace="waygps.drivers")
    found: dict[str, Any] = {}
    for driver in getPlugins(IDriver):
        name = getattr(driver, "name", None)
        if not isinstance(name, str) or not name:
            log.warn("driver plugin {driver!r} has no name; ignored", driver=driver)
            continue
        if name in found and found[name] is not driver:
            log.warn("two driver plugins are named {name!r}; keeping {kept!r}", name=name, kept=found[name])
            continue
        found[name] = driver
    return found
