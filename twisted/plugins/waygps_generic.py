from waygps.drivers.generic.driver import driver
