"""The HTTP API under ``/api/v1/``: devices, tracks, trips, stops, daily statistics, OpenAPI.

Authorised by the WebSocket tokens (``Authorization: Bearer``) and their
device scopes; see ``docs/api.md``.
"""
