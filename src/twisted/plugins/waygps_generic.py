from waygps.drivers.generic.driver import driver  # noqa: F401
