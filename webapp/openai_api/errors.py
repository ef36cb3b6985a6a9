"""Errors of the OpenAI-compatible API in OpenAI's shape, so OpenAI's clients raise the right class.

Every error a ``/v1`` route answers is ``{"error": {"message", "type", "param", "code"}}``:
``param`` names the request parameter at fault (or null), ``type`` is OpenAI's
(``invalid_request_error``, ``insufficient_quota``, ``requests``, ``server_error``), ``code``
OpenAI's where it has one (``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``,
``insufficient_quota``), else the app's own code (``validation_error``, ``upstream_error``...).
The official SDK maps the status to its exception (401 ``AuthenticationError``, 404
``NotFoundError``, 429 ``RateLimitError``...).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from webapp.errors import ApiError, http_error_code
from webapp.llm.catalogue import ModelUnavailableError
from webapp.rate_limits import retry_after_seconds
from webapp.replies.runner import BusyError
from webapp.services.quota import QuotaExceededError

__all__ = [
    "INVALID_API_KEY",
    "InvalidApiKeyError",
    "openai_error",
    "openai_error_body",
    "register_openai_error_handlers",
]

logger = logging.getLogger(__name__)

INVALID_API_KEY = "invalid_api_key"
INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
# The openai SDK retries 408, 409, 429 and 5xx unless told not to: retrying a used-up daily
# quota (hours away) or a refused key is pointless.
NO_RETRY = {"x-should-retry": "false"}


class InvalidApiKeyError(ApiError):
    """Raised when a ``/v1`` request carries no API key, or one that does not authenticate."""

    status = 401
    code = INVALID_API_KEY


def openai_error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Return an error document in OpenAI's shape."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return an error response in OpenAI's shape.

    Args:
        status: The HTTP status.
        message: Human-readable, safe to show.
        error_type: OpenAI's error type; by default ``server_error`` for 5xx, else
            ``invalid_request_error``.
        param: The request parameter at fault.
        code: The machine-readable code.
        headers: More response headers.

    Returns:
        The response.
    """
    if error_type is None:
        error_type = SERVER_ERROR if status >= 500 else INVALID_REQUEST
    response = jsonify(openai_error_body(message, error_type, param=param, code=code))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    if isinstance(exc, InvalidApiKeyError):
        # As OpenAI answers: the scheme to use, and no retry.
        return openai_error(
            401,
            exc.message,
            code=INVALID_API_KEY,
            headers={"WWW-Authenticate": 'Bearer realm="v1"', **NO_RETRY},
        )
    if isinstance(exc, QuotaExceededError):
        return openai_error(
            429,
            exc.message,
            error_type="insufficient_quota",
            code="insufficient_quota",
            headers={"Retry-After": str(exc.retry_after), **NO_RETRY},
        )
    headers = {}
    if isinstance(exc, BusyError):
        headers["Retry-After"] = str(exc.retry_after)
    return openai_error(exc.status, exc.message, param=exc.field, code=exc.code, headers=headers)


def _model_unavailable(exc: ModelUnavailableError) -> Response:
    return openai_error(
        404,
        f"The model `{exc.name}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _rate_limited(exc: RateLimitExceeded) -> Response:
    retry_after = retry_after_seconds(exc)
    return openai_error(
        429,
        f"Rate limit reached (limit: {exc.limit.limit}); retry in {retry_after} seconds.",
        error_type="requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(retry_after)},
    )


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    response = openai_error(status, exc.description or "", code=http_error_code(status))
    # Keep the headers werkzeug computed, such as Allow on a 405.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _database_error(exc: DBAPIError) -> Response:
    if exc.connection_invalidated:
        logger.warning("database connection lost: %s", exc.orig)
        return openai_error(503, "The database connection was lost; try again.")
    return _unexpected(exc)


def _unexpected(exc: Exception) -> Response:
    # The traceback goes to the log; the client learns nothing of the internals.
    logger.exception("unhandled error", exc_info=exc)
    return openai_error(500, "An internal error occurred.", code="internal_error")


def register_openai_error_handlers(bp: Blueprint) -> None:
    """Answer every error of the blueprint's routes in OpenAI's shape."""
    bp.register_error_handler(ApiError, _api_error)
    bp.register_error_handler(ModelUnavailableError, _model_unavailable)
    bp.register_error_handler(RateLimitExceeded, _rate_limited)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(DBAPIError, _database_error)
    bp.register_error_handler(Exception, _unexpected)
