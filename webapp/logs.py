"""Structured logs: one JSON object per line on stderr, which systemd hands to journald.

Every line carries ``ts``, ``level``, ``logger``, ``service``, ``message`` and, during a
request, ``request_id`` (the client's or nginx's ``X-Request-ID`` when it is sane, else a new
one; echoed in the response). gunicorn's error and access logs use the same format (see
:func:`gunicorn_logconfig`), the access lines with ``method``, ``path``, ``status``,
``duration_ms`` and ``remote_addr`` as fields.

Secrets never reach the log: whatever a line is made of (message, arguments, exception text)
goes through :func:`redact`, which removes JSON Web Tokens, bearer credentials, API keys,
passwords in URLs, ``password=``/``"token": ...`` pairs, query parameters with such names, and
the configured secret values themselves (SECRET_KEY, OPENAI_API_KEY, WEBHOOK_SECRET, the
database and Redis passwords).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from flask import Flask, Response, g, has_request_context, request

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "configure_logging",
    "gunicorn_logconfig",
    "init_request_ids",
    "json_handler",
    "redact",
]

REQUEST_ID_HEADER = "X-Request-ID"
REDACTED = "[redacted]"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SENSITIVE_NAMES = (
    r"password|passwd|new_password|current_password|secret|secret_key|token|access_token"
    r"|refresh_token|id_token|csrf_token|api[_-]?key|authorization|cookie|set-cookie"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON Web Tokens (header.payload.signature, base64url; the header starts with {" -> eyJ).
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # OpenAI-style API keys.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    # name=value, name: value, "name": "value", and query parameters (?token=...).
    (
        re.compile(
            rf"""(?ix)(["']?\b(?:{_SENSITIVE_NAMES})\b["']?\s*[:=]\s*["']?)([^"'\s,&;}}]+)"""
        ),
        rf"\1{REDACTED}",
    ),
)

_SERVICE = "webapp"
_SECRETS: tuple[str, ...] = ()
_HANDLER_MARK = "_webapp_json_handler"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret-looking part replaced by ``[redacted]``.

    Args:
        text: A log message or exception text.
        secrets: Exact values to remove too (in addition to the configured ones).

    Returns:
        The text, safe to log.
    """
    # Patterns first: a configured secret that happens to be a word ("password") must not
    # break the "password=..." pattern that hides the value after it.
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for value in (*_SECRETS, *secrets):
        if value:
            text = text.replace(value, REDACTED)
    return text


def _request_id() -> str | None:
    if not has_request_context():
        return None
    request_id: str | None = g.get("request_id")
    return request_id


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line, secrets redacted."""

    def __init__(self, service: str | None = None) -> None:
        """Create the formatter; ``service`` defaults to the one :func:`configure_logging` set."""
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": self._service or _SERVICE,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update(_access_fields(record.args))
            entry["message"] = redact(
                f"{entry.get('method')} {entry.get('path')} {entry.get('status')}"
            )
        else:
            entry["message"] = redact(record.getMessage())
        request_id = entry.get("request_id") or _request_id()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _access_fields(atoms: dict[str, Any]) -> dict[str, Any]:
    # gunicorn's access-log atoms: m method, U path, q query, s status, D microseconds,
    # h remote address, B body bytes; {name}o response headers.
    query = str(atoms.get("q") or "")
    path = str(atoms.get("U") or "")
    fields: dict[str, Any] = {
        "method": atoms.get("m"),
        "path": redact(f"{path}?{query}" if query else path),
        "status": _int(atoms.get("s")),
        "duration_ms": round(_int(atoms.get("D")) / 1000, 1),
        "remote_addr": atoms.get("h"),
        "bytes": _int(atoms.get("B")),
    }
    request_id = atoms.get("{x-request-id}o")
    if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id):
        fields["request_id"] = request_id
    return fields


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Write to whatever ``sys.stderr`` is at the time (tests swap it; a daemon does not)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def configure_logging(service: str, level: str, *, secrets: Iterable[str] = ()) -> None:
    """Send every log record, from any logger, to stderr as JSON lines.

    Idempotent: the handler is added to the root logger once per process; later calls only
    update the service name, the level and the secrets to redact. Handlers others added (a
    test's log capture) are left alone.

    Args:
        service: The service this process runs ("auth", "chat", "admin", "all").
        level: LOG_LEVEL; libraries log from WARNING on unless it is DEBUG.
        secrets: Secret values and URLs whose passwords are to be redacted wherever they
            appear.
    """
    global _SERVICE, _SECRETS
    _SERVICE = service
    values: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        password = _url_password(secret) if "://" in secret else ""
        values.append(password or secret)
    # Longest first, so a secret containing another is removed whole.
    _SECRETS = tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))
    # The app's own loggers ("webapp.*") log at ``level`` (create_app sets it); libraries only
    # from WARNING on, unless debugging: their INFO lines (every HTTP request httpx makes, with
    # its URL) are noise, and a URL may carry what should not be kept.
    # Never made less verbose than someone (a test's log capture) already set it.
    logging.getLogger("webapp").setLevel(level)
    root = logging.getLogger()
    wanted = logging.DEBUG if level == "DEBUG" else logging.WARNING
    if root.level == logging.NOTSET or root.level > wanted:
        root.setLevel(wanted)
    if not any(getattr(handler, _HANDLER_MARK, False) for handler in root.handlers):
        root.addHandler(json_handler())


def json_handler(service: str | None = None) -> logging.Handler:
    """Return a handler writing JSON lines to stderr (one per process is enough on root).

    Args:
        service: Service name for its lines; None for the one :func:`configure_logging` set.

    Returns:
        The handler.
    """
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter(service))
    setattr(handler, _HANDLER_MARK, True)
    return handler


def _new_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def init_request_ids(app: Flask) -> None:
    """Give every request an id (``X-Request-ID`` in, or a new one), logged and echoed.

    Args:
        app: The application.
    """
    app.before_request(_new_request_id)
    app.after_request(_echo_request_id)


def gunicorn_logconfig(service: str) -> dict[str, Any]:
    """Return gunicorn's ``logconfig_dict``: its error and access logs as JSON on stderr.

    Args:
        service: The service name to put on gunicorn's own lines.

    Returns:
        A :func:`logging.config.dictConfig` configuration.
    """
    # Levels are left to gunicorn (loglevel) and to the app (LOG_LEVEL); the root handler is
    # the one configure_logging would add, so the app does not add a second.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {},
        "handlers": {
            "gunicorn": {"()": json_handler, "service": service},
            "root": {"()": json_handler},
        },
        "root": {"handlers": ["root"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["gunicorn"], "propagate": False},
            "gunicorn.access": {"handlers": ["gunicorn"], "propagate": False},
        },
    }
