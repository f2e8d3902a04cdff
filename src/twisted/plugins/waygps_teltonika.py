from waygps.drivers.teltonika.driver import driver
