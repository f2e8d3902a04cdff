"""Stored positions read back: track queries, trips and stops, and exports (JSON, GeoJSON, GPX, CSV).

Everything here but ``source`` is pure: points in, records or bytes out, no
I/O and no clock. ``source`` reads ``DadosVeiculo`` batch by batch through the
``{IMEI, dataDevice}`` index, so a caller never holds a whole track.
"""
