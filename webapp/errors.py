"""One JSON error shape for every API error.

Every error a client sees looks like::

    {"error": {"code": "validation_error", "message": "email is required", "field": "email"}}

``field`` is present only when one input field is to blame. Services raise :class:`ApiError`
subclasses (they know nothing of HTTP requests, and this module imports no Flask: the webhook
worker and the bot use it too); the handlers of :mod:`webapp.error_handlers` turn those,
werkzeug's HTTP errors and anything unexpected into that shape.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

__all__ = [
    "AccountDisabledError",
    "ApiError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UpstreamError",
    "ValidationError",
    "error_body",
    "http_error_code",
]

# Codes for werkzeug's HTTP errors (routing, content length, methods); any other status gets a
# code derived from its name.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
}


def http_error_code(status: int) -> str:
    """Return the error code for an HTTP status: ``gone`` for 410, ``not_found`` for 404.

    Args:
        status: An HTTP status code.

    Returns:
        The code from the table above, else the status phrase in snake case.
    """
    if status in _HTTP_CODES:
        return _HTTP_CODES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "internal_error" if status >= 500 else "bad_request"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


class ApiError(Exception):
    """An error meant for the client, carrying its HTTP status and error code.

    Attributes:
        status: HTTP status code of the response.
        code: Machine-readable error code.
        message: Human-readable explanation, safe to show to the client.
        field: Name of the input field at fault, if any.
    """

    status = 400
    code = "bad_request"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a subclass that sets only its ``status`` the code of that status (the table)."""
        super().__init_subclass__(**kwargs)
        if "status" in cls.__dict__ and "code" not in cls.__dict__:
            cls.code = http_error_code(cls.status)

    def __init__(self, message: str, *, field: str | None = None) -> None:
        """Create the error with a client-safe message and, optionally, the field at fault."""
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(ApiError):
    """Raised when an input value is missing, of the wrong type or out of range."""

    status = 400
    code = "validation_error"


class UnauthorizedError(ApiError):
    """Raised when the caller is not authenticated or gave wrong credentials."""

    status = 401


class ForbiddenError(ApiError):
    """Raised when the caller is authenticated but not allowed to do this."""

    status = 403


class AccountDisabledError(ForbiddenError):
    """Raised when the right credentials belong to an account an admin disabled."""

    code = "account_disabled"


class NotFoundError(ApiError):
    """Raised when a resource does not exist or belongs to someone else."""

    status = 404


class ConflictError(ApiError):
    """Raised when the request conflicts with existing data (for example a taken email)."""

    status = 409


class ServiceUnavailableError(ApiError):
    """Raised when a dependency the request needs (Redis, for revocation) is down."""

    status = 503


class UpstreamError(ApiError):
    """Raised when a dependency the request relies on (the language model) failed."""

    status = 502


def error_body(code: str, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    """Build the JSON error document.

    Args:
        code: Machine-readable error code.
        message: Human-readable explanation.
        field: Name of the input field at fault, if any.
        **details: Further machine-readable members of the error (``retry_after``).

    Returns:
        ``{"error": {"code": ..., "message": ..., "field": ...}}`` without ``field`` when unset.
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(details)
    return {"error": error}
