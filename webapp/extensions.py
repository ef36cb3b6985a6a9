"""Flask extensions, created unbound at import time and bound to an app in ``create_app``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis

from webapp.models import Base

__all__ = [
    "CORS_ALLOWED_HEADERS",
    "MIGRATIONS_DIR",
    "REDIS_EXTENSION",
    "cors",
    "db",
    "get_redis",
    "init_cors",
    "jwt",
    "migrate",
]

# Request headers a cross-origin page may send: the bearer token, JSON, the CSRF token of the
# cookie session, and the resume point of an event stream.
CORS_ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-CSRF-TOKEN", "Last-Event-ID")

# The migrations ship inside the package so that `chatbot db upgrade` works from an installed
# wheel, whatever the current directory.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# expire_on_commit=False: objects stay readable after commit, so serialising a freshly stored
# row does not cost a second SELECT, and a long SSE stream does not re-open a transaction (and
# hold a pooled connection) just to read attributes it already has.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
# compare_server_default keeps `chatbot db migrate` honest about defaults such as now().
migrate = Migrate(directory=str(MIGRATIONS_DIR), compare_server_default=True)


class RequestJWTManager(JWTManager):
    """Flask-JWT-Extended's manager, decoding each token once per request.

    The rate limiter needs the token's subject before the view runs (its key), and the view's
    ``jwt_required`` decodes the same token again; a decode costs about 0.2 ms. The claims of a
    token that passed (signature, expiry, CSRF value) are kept in the request's WSGI environ,
    which is the request's own (``g`` outlives a request when an app context was pushed around
    it, as tests do), and handed out again for the same token, CSRF value and expiry mode.
    Failures are not kept: they raise again, with the library's own error.
    """

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: str | None = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if not has_request_context():
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        decoded: dict[tuple[str, str | None, bool], dict[str, Any]] = request.environ.setdefault(
            _DECODED_TOKENS, {}
        )
        key = (encoded_token, csrf_value, allow_expired)
        if key not in decoded:
            decoded[key] = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        # A copy: a caller changing its claims must not change what the next one gets.
        return dict(decoded[key])


_DECODED_TOKENS = "webapp.decoded_tokens"
jwt = RequestJWTManager()
cors = CORS()
# The app's shared Redis client (token revocation, rate limits, reply cache) lives in
# app.extensions under this key: one client and connection pool per process.
REDIS_EXTENSION = "redis"


def get_redis(app: Flask) -> Redis:
    """Return the app's shared Redis client (set up by ``create_app``)."""
    client: Redis = app.extensions[REDIS_EXTENSION]
    return client


def init_cors(app: Flask, origins: Sequence[str]) -> None:
    """Let pages from ``origins`` (CORS_ORIGINS) call the API from JavaScript; nobody else.

    Without origins nothing is added, and browsers keep cross-origin pages out. Credentials
    (cookies) are not allowed cross-origin: the browser session belongs to the site that
    serves the UI, and other origins use bearer tokens.

    Args:
        app: The application.
        origins: Exact origins (``https://app.example.com``), or ``*`` for any.
    """
    if not origins:
        return
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": list(origins)}},
        allow_headers=list(CORS_ALLOWED_HEADERS),
        expose_headers=["Retry-After"],
        supports_credentials=False,
        max_age=600,
    )
