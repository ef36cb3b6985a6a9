"""JWT configuration and authorization helpers shared by the blueprints.

Tokens are HS256-signed with SECRET_KEY. Access and refresh tokens carry different ``type``
claims and Flask-JWT-Extended refuses one where the other is required. Every authenticated
request loads the user from the database, so a disabled account is locked out at once, even
with tokens issued before it was disabled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response
from flask_jwt_extended import current_user, verify_jwt_in_request

from webapp.errors import ForbiddenError, error_response
from webapp.extensions import db, jwt
from webapp.models import User
from webapp.settings import Settings

__all__ = ["admin_required", "init_jwt", "jwt_config"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def jwt_config(settings: Settings) -> dict[str, Any]:
    """Return the Flask-JWT-Extended configuration for these settings.

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
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=settings.access_token_expire_minutes),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=settings.refresh_token_expire_days),
    }


def init_jwt(app: Flask) -> None:
    """Bind the JWT manager to ``app`` with user loading and JSON error responses.

    Args:
        app: The application (configured with :func:`jwt_config`).
    """
    jwt.init_app(app)


@jwt.user_identity_loader
def _user_identity(user: User) -> str:
    # PyJWT requires "sub" to be a string.
    return str(user.id)


@jwt.user_lookup_loader
def _load_user(_jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> User | None:
    try:
        user_id = int(jwt_data["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    user = db.session.get(User, user_id)
    # Returning None makes Flask-JWT-Extended reject the request: deleted or disabled accounts
    # lose access immediately, whatever tokens they still hold.
    if user is None or not user.is_active:
        return None
    return user


def _unauthorized(message: str) -> tuple[Response, int]:
    return error_response(401, "unauthorized", message)


@jwt.unauthorized_loader
def _missing_token(_reason: str) -> tuple[Response, int]:
    return _unauthorized("Missing or malformed Authorization header (expected a Bearer token).")


@jwt.invalid_token_loader
def _invalid_token(reason: str) -> tuple[Response, int]:
    # The reason says what was wrong (bad signature, wrong token type), which helps a client
    # developer and reveals nothing secret.
    return _unauthorized(f"Invalid token: {reason}.")


@jwt.expired_token_loader
def _expired_token(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
    return _unauthorized("Token has expired.")


@jwt.revoked_token_loader
def _revoked_token(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
    return _unauthorized("Token has been revoked.")


@jwt.needs_fresh_token_loader
def _stale_token(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
    return _unauthorized("A fresh token is required; log in again.")


@jwt.user_lookup_error_loader
def _unknown_user(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
    return _unauthorized("The account for this token does not exist or is disabled.")


@jwt.token_verification_failed_loader
def _verification_failed(_header: dict[str, Any], _data: dict[str, Any]) -> tuple[Response, int]:
    return _unauthorized("Token claims verification failed.")


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
