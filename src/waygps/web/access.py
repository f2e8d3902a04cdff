"""Who may read ``/metrics`` and ``/health``: a token, when ``[web] metrics_token`` is set.

The token comes as ``Authorization: Bearer TOKEN`` (what Prometheus'
``authorization`` / ``bearer_token`` settings send) or ``?token=TOKEN``; both
are redacted from every log line (:mod:`waygps.redaction`). Compared in
constant time. Without a configured token the resources are open, as before:
the web port binds 127.0.0.1 by default.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource

from waygps import metrics

log = Logger(namespace="waygps.web")


def presented_token(request: Any) -> str | None:
    """The token a request carries (the header wins), or ``None``."""
    header = request.getHeader(b"authorization")
    if header:
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = (getattr(request, "args", None) or {}).get(b"token")
    if values:
        return values[0].decode("utf-8", "replace")
    return None


class TokenGuard(Resource):
    """``resource`` behind a token: 401 without one, 403 with a wrong one (and a log line, a counter)."""

    isLeaf = True

    def __init__(self, resource: Resource, token: str, name: str) -> None:
        super().__init__()
        self.resource = resource
        self.name = name
        self._digest = hashlib.sha256(token.encode("utf-8")).digest()

    def render(self, request: Any) -> Any:
        presented = presented_token(request)
        if presented is not None and hmac.compare_digest(
                hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest(), self._digest):
            return self.resource.render(request)
        code, why = (401, "token required") if presented is None else (403, "invalid token")
        metrics.WEB_REFUSED.labels(self.name, str(code)).inc()
        peer = request.getClientAddress()
        log.info("web {peer}: {name} refused: {why}", peer=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}",
                 name=self.name, why=why)
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if code == 401:
            request.setHeader(b"www-authenticate", b'Bearer realm="waygps"')
        return f"{why}\n".encode("ascii")
