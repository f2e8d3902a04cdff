"""Secrets out of log lines: tokens in query strings, ``Authorization`` headers, configured tokens.

Every log event of the process passes :class:`Redactor` before any observer
writes it: :func:`install` puts one observer first on Twisted's global log
publisher that rewrites each event *in place* (its formatted text, its string
fields, its traceback), so twistd's own log file, ``--logfile``, the JSON
observer of :mod:`waygps.logs` and anything added later all see the redacted
event. What is removed:

* the value of ``token=``, ``access_token=``, ``api_key=``, ``apikey=``,
  ``password=`` and ``secret=`` in any text (query strings, form bodies);
* the credentials of ``Authorization:`` headers and any ``Bearer …`` value;
* the password of ``scheme://user:password@host`` URIs;
* every configured secret value itself (WebSocket tokens, the metrics token),
  wherever it appears, raw or URL-encoded.

No I/O, no Twisted at import; :func:`install` imports ``twisted.logger``.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable, MutableMapping
from urllib.parse import quote

MASK = "<redacted>"
MIN_SECRET = 4  # shorter configured values are not searched for (they would mask ordinary words)

_QUERY = re.compile(r"(?i)\b((?:access_)?token|api_?key|password|secret)(=|%3D)([^&\s\"'#;,)<>]+)")
_AUTHORIZATION = re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token|digest)\s+)?"
                            r"[^\s\"',;]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_URI_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@")


class Redactor:
    """Removes secrets from text. Thread-safe to update; cheap when nothing matches."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def add_secrets(self, values: Iterable[str]) -> None:
        """Also remove these literal values (and their URL-encoded forms), longest first."""
        with self._lock:
            found = set(self._secrets)
            for value in values:
                if isinstance(value, str) and len(value) >= MIN_SECRET:
                    found.add(value)
                    found.add(quote(value, safe=""))
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "=" in text or "%3D" in text or "%3d" in text:
            text = _QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        lowered = text.lower()
        if "authorization" in lowered:
            text = _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}", text)
        if "bearer" in lowered:
            text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        if "://" in text and "@" in text:
            text = _URI_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        return text

    def value(self, value: Any) -> Any:
        """``value`` with secrets removed when it is text (bytes, lists and tuples of text too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bytes, bytearray)):
            decoded = bytes(value).decode("utf-8", "surrogateescape")
            cleaned = self.text(decoded)
            return value if cleaned == decoded else cleaned.encode("utf-8", "surrogateescape")
        if isinstance(value, (list, tuple)) and len(value) <= 64:
            return type(value)(self.value(v) for v in value)
        return value

    def event(self, event: MutableMapping[str, Any]) -> None:
        """Redact one ``twisted.logger`` event in place."""
        from twisted.logger import formatEvent

        for key, value in list(event.items()):
            if key in ("log_format", "log_failure", "log_logger", "log_source", "log_level", "log_time",
                       "log_namespace", "log_trace", "log_io", "log_redacted"):
                continue
            cleaned = self.value(value)
            if cleaned is not value:
                event[key] = cleaned
        if event.get("log_format") is not None:
            # Formatted once, here: the observers then only insert the redacted text.
            event["log_redacted"] = self.text(formatEvent(event))
            event["log_format"] = "{log_redacted}"
        failure = event.get("log_failure")
        if failure is not None:
            try:
                trace = failure.getTraceback()
            except Exception:
                return
            cleaned = self.text(trace)
            if cleaned != trace:
                event["log_failure"] = _RedactedFailure(failure, cleaned, self)
                if "failure" in event:
                    event["failure"] = event["log_failure"]


class _RedactedFailure:
    """A failure whose traceback text had a secret: what observers format, with the secret removed."""

    def __init__(self, failure: Any, trace: str, redactor: Redactor) -> None:
        self._failure = failure
        self._trace = trace
        self.type = getattr(failure, "type", None)
        self.value = getattr(failure, "value", None)
        self._redactor = redactor

    def getTraceback(self, *args: Any, **kwargs: Any) -> str:  # noqa: N802 (Twisted's name)
        return self._trace

    def getErrorMessage(self) -> str:  # noqa: N802
        return self._redactor.text(self._failure.getErrorMessage())

    def printTraceback(self, file: Any = None, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        if file is not None:
            file.write(self._trace)

    def check(self, *types: Any) -> Any:
        return self._failure.check(*types)

    def __repr__(self) -> str:
        return self._redactor.text(repr(self._failure))


REDACTOR = Redactor()


class _InPlace:
    """The observer :func:`install` puts first: it never raises into the logging system."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, event: MutableMapping[str, Any]) -> None:
        try:
            self.redactor.event(event)
        except Exception:  # a log line must never be lost to redaction; a broken one is dropped to its format
            event["log_format"] = "(log event could not be redacted; its text is withheld)"


_installed: _InPlace | None = None


def install(secrets: Iterable[str] = (), publisher: Any = None) -> Redactor:
    """Redact every event of ``publisher`` (default: the global one) before its other observers
    see it; add ``secrets`` to the values removed. Idempotent."""
    global _installed
    from zope.interface import directlyProvides
    from twisted.logger import ILogObserver, globalLogPublisher

    REDACTOR.add_secrets(secrets)
    target = globalLogPublisher if publisher is None else publisher
    if publisher is None and _installed is not None:
        return REDACTOR
    observer = _InPlace(REDACTOR)
    directlyProvides(observer, ILogObserver)
    observers = getattr(target, "_observers", None)
    if isinstance(observers, list):
        observers.insert(0, observer)  # first: before twistd's buffer and file observers
    else:
        target.addObserver(observer)
    if publisher is None:
        _installed = observer
    return REDACTOR


def config_secrets(config: Any) -> list[str]:
    """The secret values of a :class:`waygps.config.Config` (plaintext tokens as configured)."""
    values: list[str] = []
    websocket = getattr(config, "websocket", None)
    for token in getattr(websocket, "tokens", ()):
        secret = getattr(token, "secret", "")
        if secret:
            values.append(secret)
    web = getattr(config, "web", None)
    metrics_token = getattr(web, "metrics_token", "")
    if metrics_token:
        values.append(metrics_token)
    return values
