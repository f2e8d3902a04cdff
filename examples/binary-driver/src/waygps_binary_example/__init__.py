"""An example binary driver for WayGPS (protocol "WB")."""
