"""Routes of the auth service, under ``/api/v1/auth``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from flask_jwt_extended import create_access_token, create_refresh_token, current_user, jwt_required

from webapp.extensions import db
from webapp.request_body import read_json_object
from webapp.services import accounts
from webapp.validation import optional_string, reject_unknown_fields, required_string

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


def _access_token_seconds() -> int:
    return int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())


@bp.post("/register")
def register() -> tuple[dict[str, Any], int]:
    """Create an account: ``{email, password, display_name?}`` -> 201 ``{"user": ...}``."""
    data = read_json_object()
    # Anything else (role, is_admin, ...) is refused rather than ignored: registration can
    # never grant privileges, and the client should know its field was not applied.
    reject_unknown_fields(data, ("email", "password", "display_name"))
    user = accounts.register_user(
        db.session,
        email=required_string(data, "email"),
        password=required_string(data, "password"),
        display_name=optional_string(data, "display_name"),
    )
    return {"user": accounts.user_to_dict(user)}, 201


@bp.post("/login")
def login() -> dict[str, Any]:
    """Exchange ``{email, password}`` for an access and a refresh token."""
    data = read_json_object()
    reject_unknown_fields(data, ("email", "password"))
    user = accounts.authenticate(
        db.session,
        email=required_string(data, "email"),
        password=required_string(data, "password"),
    )
    return {
        "access_token": create_access_token(identity=user, fresh=True),
        "refresh_token": create_refresh_token(identity=user),
        "token_type": "Bearer",
        "expires_in": _access_token_seconds(),
        "user": accounts.user_to_dict(user),
    }


@bp.post("/refresh")
@jwt_required(refresh=True)
def refresh() -> dict[str, Any]:
    """Issue a new access token for a valid refresh token."""
    return {
        "access_token": create_access_token(identity=current_user, fresh=False),
        "token_type": "Bearer",
        "expires_in": _access_token_seconds(),
    }


@bp.get("/me")
@jwt_required()
def me() -> dict[str, Any]:
    """Return the authenticated user."""
    return {"user": accounts.user_to_dict(current_user)}
