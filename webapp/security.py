"""JWT configuration, the token checks every service shares, and authorization helpers.

Tokens are HS256-signed with SECRET_KEY. Access and refresh tokens carry different ``type``
claims and Flask-JWT-Extended refuses one where the other is required. API clients send them
as ``Authorization: Bearer``; browsers get the same tokens in HttpOnly cookies (see
:func:`jwt_config`), with a double-submit CSRF token required on unsafe methods.

Every token is checked on every request, by all three services, in this order:

1. signature (HS256 only), expiry and type;
2. the user's ``token_version`` (database): a password change or deactivation raises it and
   every older token is refused. The same user row is then loaded as ``current_user``, so the
   check costs no extra query, and a disabled or deleted account is locked out at once;
3. the denylist (Redis, :mod:`webapp.services.sessions`): logged-out sessions and rotated
   refresh tokens.

If Redis is down, step 3 fails open for access tokens (logged in users keep reading their
data; a token logged out during the outage stays usable until it expires, at most
ACCESS_TOKEN_EXPIRE_MINUTES, while step 2 still applies) and closed for refresh tokens (503):
a refresh cannot be recorded as used, so allowing it would defeat rotation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response, current_app, has_request_context, request
from flask_jwt_extended import current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import CSRFError, WrongTokenError
from redis import Redis

from webapp.error_handlers import error_response
from webapp.errors import ForbiddenError, ServiceUnavailableError
from webapp.extensions import db, jwt
from webapp.models import User, max_id
from webapp.services.sessions import (
    SESSION_CLAIM,
    VERSION_CLAIM,
    SessionStore,
    SessionStoreUnavailableError,
)
from webapp.settings import Settings
from webapp.validation import parse_whole_number

__all__ = [
    "CSRF_HEADER",
    "REFRESH_COOKIE_PATH",
    "SESSIONS_EXTENSION",
    "admin_required",
    "init_jwt",
    "jwt_config",
    "session_store",
]

SESSIONS_EXTENSION = "sessions"
# The ``type`` claims of the tokens this app issues (Flask-JWT-Extended's names).
TOKEN_TYPES = ("access", "refresh")
CSRF_HEADER = "X-CSRF-TOKEN"
# The refresh cookie goes only to the auth service's own endpoints (refresh, session, logout);
# the access cookie to every path, because chat and admin live under other prefixes.
REFRESH_COOKIE_PATH = "/api/v1/auth/"
# Where the request keeps the user row its token belongs to (see _token_user).
_REQUEST_USER = "webapp.request_user"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def jwt_config(settings: Settings) -> dict[str, Any]:
    """Return the Flask-JWT-Extended configuration for these settings.

    Cookies are ``Secure``, ``HttpOnly`` (the CSRF cookies excepted: the page must read them)
    and ``SameSite=Strict``: the browser never sends them with a request another site starts,
    not even a top-level navigation. Lax would allow that navigation, which this API does not
    need: its pages load without credentials and then call the API from the same site.

    Args:
        settings: The process settings.

    Returns:
        Flask config keys and values.
    """
    return {
        "JWT_SECRET_KEY": settings.secret_key,
        "JWT_ALGORITHM": "HS256",
        # Pin the accepted algorithms: a token claiming "none" or another algorithm is refused.
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        # Headers first: a request with an Authorization header is an API client and needs no
        # CSRF token; without one, the cookie is used and the CSRF check applies.
        "JWT_TOKEN_LOCATION": ["headers", "cookies"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=settings.access_token_expire_minutes),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=settings.refresh_token_expire_days),
        "JWT_COOKIE_SECURE": True,
        "JWT_COOKIE_SAMESITE": "Strict",
        "JWT_COOKIE_CSRF_PROTECT": True,
        "JWT_CSRF_IN_COOKIES": True,
        "JWT_CSRF_CHECK_FORM": False,
        "JWT_ACCESS_CSRF_HEADER_NAME": CSRF_HEADER,
        "JWT_REFRESH_CSRF_HEADER_NAME": CSRF_HEADER,
        "JWT_ACCESS_COOKIE_PATH": "/",
        "JWT_REFRESH_COOKIE_PATH": REFRESH_COOKIE_PATH,
        # The page reads both CSRF cookies, whatever its path.
        "JWT_ACCESS_CSRF_COOKIE_PATH": "/",
        "JWT_REFRESH_CSRF_COOKIE_PATH": "/",
        # Persistent cookies, each living as long as its token (set per response).
        "JWT_SESSION_COOKIE": False,
    }


def init_jwt(app: Flask, redis_client: Redis) -> None:
    """Bind the JWT manager to ``app`` with revocation checks and JSON error responses.

    Args:
        app: The application (configured with :func:`jwt_config`).
        redis_client: The app's Redis client, which holds the denylist.
    """
    jwt.init_app(app)
    app.extensions[SESSIONS_EXTENSION] = SessionStore(
        redis_client, max_token_lifetime=app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    )
    # Replaces Flask-JWT-Extended's handler (a 401, which a client would answer by refreshing,
    # which needs the same CSRF token and fails the same way).
    app.register_error_handler(CSRFError, _csrf_failed)


def session_store() -> SessionStore:
    """Return the current app's denylist of sessions and rotated refresh tokens."""
    store: SessionStore = current_app.extensions[SESSIONS_EXTENSION]
    return store


@jwt.user_identity_loader
def _user_identity(user: User) -> str:
    # PyJWT requires "sub" to be a string.
    return str(user.id)


@jwt.additional_claims_loader
def _version_claim(user: User) -> dict[str, Any]:
    return {VERSION_CLAIM: user.token_version}


def _token_user(jwt_data: dict[str, Any]) -> User | None:
    # Only our own form of subject, an id the column can hold: a signed token with another
    # one ("+1", 2**31, twenty digits) belongs to nobody, and must not reach the database.
    user_id = parse_whole_number(jwt_data.get("sub"), minimum=1, maximum=max_id(User.id))
    if user_id is None:
        return None
    # The identity map keeps the row for the rest of the request: the user loader below and
    # the view get it without another query. It holds its objects weakly, though, so the
    # request keeps a reference; without one, the row loaded for the denylist check was gone
    # by the time the user loader asked, and was selected again.
    user = db.session.get(User, user_id)
    if has_request_context():
        request.environ[_REQUEST_USER] = user
    return user


@jwt.token_in_blocklist_loader
def _token_revoked(_jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> bool:
    user = _token_user(jwt_data)
    if user is None or jwt_data.get(VERSION_CLAIM) != user.token_version:
        return True
    try:
        return session_store().is_revoked(jwt_data)
    except SessionStoreUnavailableError:
        if jwt_data.get("type") == "refresh":
            raise ServiceUnavailableError(
                "Sessions cannot be refreshed right now; try again shortly."
            ) from None
        current_app.logger.warning(
            "denylist unavailable: accepting access token of session %s unchecked",
            jwt_data.get(SESSION_CLAIM),
        )
        return False


@jwt.token_verification_loader
def _known_token_type(_jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> bool:
    # Flask-JWT-Extended only refuses a refresh token where an access token is needed, so a
    # signed token of any other type would pass as an access token: only our two types exist.
    if jwt_data.get("type") not in TOKEN_TYPES:
        raise WrongTokenError(f"Only {' or '.join(TOKEN_TYPES)} tokens are allowed")
    return True


@jwt.user_lookup_loader
def _load_user(_jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> User | None:
    user = _token_user(jwt_data)
    # Returning None makes Flask-JWT-Extended reject the request: deleted or disabled accounts
    # lose access immediately, whatever tokens they still hold.
    if user is None or not user.is_active:
        return None
    return user


def _unauthorized(message: str) -> tuple[Response, int]:
    return error_response(401, "unauthorized", message)


def _csrf_failed(exc: CSRFError) -> tuple[Response, int]:
    return error_response(
        403,
        "csrf_failed",
        f"CSRF check failed ({exc}): requests authenticated by cookie must send the value of"
        f" the csrf_access_token cookie (csrf_refresh_token for the refresh cookie) in the"
        f" {CSRF_HEADER} header.",
    )


@jwt.unauthorized_loader
def _missing_token(_reason: str) -> tuple[Response, int]:
    return _unauthorized(
        "Missing token: send 'Authorization: Bearer <access token>', or sign in for a session"
        " cookie."
    )


@jwt.invalid_token_loader
def _invalid_token(reason: str) -> tuple[Response, int]:
    # The reason says what was wrong (bad signature, wrong token type), which helps a client
    # developer and reveals nothing secret.
    return _unauthorized(f"Invalid token: {reason}.")


def _refusal(message: str) -> Callable[[dict[str, Any], dict[str, Any]], tuple[Response, int]]:
    def refuse(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
        return _unauthorized(message)

    return refuse


# What the client is told for each way a token can be refused after it was decoded.
for _register, _message in (
    (jwt.expired_token_loader, "Token has expired."),
    (jwt.revoked_token_loader, "Token has been revoked."),
    (jwt.needs_fresh_token_loader, "A fresh token is required; log in again."),
    (jwt.user_lookup_error_loader, "The account for this token does not exist or is disabled."),
    (jwt.token_verification_failed_loader, "Token claims verification failed."),
):
    _register(_refusal(_message))


def admin_required(view: Callable[_P, _R]) -> Callable[_P, _R]:
    """Allow only authenticated admins: 401 without a valid access token, 403 for non-admins.

    Args:
        view: The view function to protect.

    Returns:
        The wrapped view.
    """

    @functools.wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        verify_jwt_in_request()
        # The role comes from the database row loaded for this request, never from the token,
        # so a demotion takes effect immediately.
        if not current_user.is_admin:
            raise ForbiddenError("Admin role required.")
        return view(*args, **kwargs)

    return wrapper
