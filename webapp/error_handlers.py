"""The Flask side of the one JSON error shape: error responses and the app's error handlers.

:mod:`webapp.errors` defines the errors and the document; this module turns them, werkzeug's
HTTP errors and anything unexpected into responses (JSON for the API, an HTML page for a browser
asking for one).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from webapp.errors import ApiError, error_body, http_error_code

__all__ = ["error_response", "register_error_handlers"]


def error_response(
    status: int, code: str, message: str, field: str | None = None, **details: Any
) -> tuple[Response, int]:
    """Build a JSON error response in the shared shape.

    Args:
        status: HTTP status code.
        code: Machine-readable error code.
        message: Human-readable explanation.
        field: Name of the input field at fault, if any.
        **details: Further machine-readable members of the error (``retry_after``).

    Returns:
        A ``(response, status)`` pair a Flask view or error handler can return.
    """
    return jsonify(error_body(code, message, field, **details)), status


def register_error_handlers(app: Flask) -> None:
    """Make every error leaving ``app`` a JSON document in the shared shape.

    Args:
        app: The application to register the handlers on.
    """

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def handle_http_exception(
        exc: HTTPException,
    ) -> Response | tuple[Response, int] | tuple[str, int]:
        status = exc.code or 500
        if _wants_html_page():
            return _html_error(status, exc.description or "")
        response, _ = error_response(status, http_error_code(status), exc.description or "")
        # Keep headers werkzeug computed, such as Allow on 405 responses.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> tuple[Response, int] | tuple[str, int]:
        # The client gets a generic message; the traceback goes to the log, where the operator
        # can see it without exposing internals (SQL, paths) to the caller.
        current_app.logger.exception("unhandled error", exc_info=exc)
        if _wants_html_page():
            return _html_error(500, "An internal error occurred.")
        return error_response(500, "internal_error", "An internal error occurred.")

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError) -> tuple[Response, int] | tuple[str, int]:
        # Pooled connections are not tested before use (a round trip on every checkout): one
        # that died with a database restart or failover fails its first statement instead.
        # SQLAlchemy has then invalidated the whole pool, so the next request connects afresh;
        # this one is told to retry. Any other database error is a bug: a 500.
        if not exc.connection_invalidated:
            return handle_unexpected(exc)
        current_app.logger.warning("database connection lost: %s", exc.orig)
        message = "The database connection was lost; try again."
        if _wants_html_page():
            return _html_error(503, message)
        return error_response(503, http_error_code(503), message)


def _wants_html_page() -> bool:
    """Tell whether the failed request was a browser asking for a page, not an API call.

    API paths always get JSON, whatever the client accepts; elsewhere a client that prefers HTML
    (a browser following a link to a page that does not exist) gets a page.
    """
    if request.path.startswith("/api/"):
        return False
    accepted = request.accept_mimetypes
    return accepted.best_match(("application/json", "text/html")) == "text/html"


def _html_error(status: int, message: str) -> tuple[str, int]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return render_template("error.html", status=status, phrase=phrase, message=message), status
