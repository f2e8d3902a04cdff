from waygps.drivers.gv50.driver import driver  # noqa: F401
