"""API errors: every one a JSON body with a fitting status, naming the bad parameter when there is one."""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger

from waygps import metrics

log = Logger(namespace="waygps.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message, "status": self.status}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


def bad_parameter(name: str, message: str) -> ApiError:
    return ApiError(400, "bad_parameter", f"{name}: {message}", parameter=name)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def write_json(request: Any, status: int, body: Any, endpoint: str) -> None:
    """Answer ``request`` with a whole JSON body (unless the client went away)."""
    metrics.API_REQUESTS.labels(endpoint, str(status)).inc()
    if getattr(request, "_disconnected", False) or request.finished:
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.write(json_bytes(body))
    request.finish()


def write_error(request: Any, error: ApiError, endpoint: str) -> None:
    log.info("api {method} {path}: {status} {code}: {message}", method=_text(request.method),
             path=_text(request.uri), status=error.status, code=error.code, message=error.message)
    for name, value in error.headers.items():
        request.setHeader(name, value)
    write_json(request, error.status, error.body(), endpoint)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
