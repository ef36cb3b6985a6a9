"""Routes of the auth service, under ``/api/v1/auth``.

API clients log in at ``POST /login`` and get both tokens in the body; they send the access
token as ``Authorization: Bearer``, exchange the refresh token at ``POST /refresh`` (which
rotates it) and end the session at ``POST /logout``.

Browsers sign in at ``POST /session``, which sets the same tokens as HttpOnly cookies and
returns only the CSRF tokens; unsafe requests must echo one in ``X-CSRF-TOKEN``. They refresh
at ``POST /refresh`` with the refresh cookie and sign out at ``DELETE /session``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    current_user,
    get_csrf_token,
    get_jwt,
    get_jwt_request_location,
    jwt_required,
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
)
from sqlalchemy.exc import SQLAlchemyError

from webapp.emails import canonical_email
from webapp.errors import (
    AccountDisabledError,
    ForbiddenError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from webapp.extensions import db
from webapp.metrics import record_login
from webapp.models import EMAIL_MAX_LENGTH, ApiKey, User
from webapp.rate_limits import (
    LOGIN_ACCOUNT,
    LOGIN_IP,
    PASSWORD_CHANGE,
    REGISTER_ACCOUNT,
    REGISTER_IP,
    limited,
)
from webapp.request_models.auth import (
    ApiKeyCreate,
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
    RegisterRequest,
)
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.security import CSRF_HEADER, SESSIONS_EXTENSION, session_store
from webapp.services import accounts, api_keys, audit
from webapp.services.sessions import SESSION_CLAIM, SessionStoreUnavailableError, new_session_id

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

_REDIS_DOWN = "Sessions cannot be changed right now; try again shortly."
_LOGIN_ENDPOINTS = ("auth.login", "auth.create_session")
# Ids beyond the column's range can match nothing: 404 in routing, not a database error.
_API_KEY = id_rule("api_key_id", ApiKey.id)

logger = logging.getLogger(__name__)


def _audit(action: str, **fields: Any) -> None:
    """Record a security event in a transaction of its own, from this request's client.

    A failure is logged, not raised: the response to the event (a refused login) matters more
    than its record.
    """
    try:
        audit.record(db.session(), action=action, source_ip=request.remote_addr, **fields)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        logger.exception("could not record audit event %s", action)


def _typed_email(data: Any) -> str | None:
    email = data.get("email") if isinstance(data, dict) else None
    # Cut first: the audit record keeps a short prefix anyway, and NFKC of a huge text is work.
    return canonical_email(email[:EMAIL_MAX_LENGTH]) if isinstance(email, str) else None


@bp.record
def _audit_refresh_reuse(state: BlueprintSetupState) -> None:
    state.app.extensions[SESSIONS_EXTENSION].reuse_listeners.append(_refresh_token_reused)


def _refresh_token_reused(claims: Mapping[str, Any]) -> None:
    subject = claims.get("sub")
    _audit(
        "auth.refresh_reuse",
        actor_id=int(subject) if isinstance(subject, str) and subject.isdecimal() else None,
        target_type="session",
        target_id=claims.get(SESSION_CLAIM),
    )


@bp.after_request
def _audit_lockout(response: Response) -> Response:
    # A login refused by the rate limit never reaches the view: record it here.
    if response.status_code == 429 and request.endpoint in _LOGIN_ENDPOINTS:
        _audit(
            "auth.lockout",
            target_type="email",
            target_id=_typed_email(request.get_json(silent=True)),
        )
    return response


def _lifetime_seconds(config_key: str) -> int:
    return int(current_app.config[config_key].total_seconds())


def _issue_tokens(user: User, session_id: str, *, fresh: bool) -> tuple[str, str]:
    claims = {SESSION_CLAIM: session_id}
    return (
        create_access_token(identity=user, fresh=fresh, additional_claims=claims),
        create_refresh_token(identity=user, additional_claims=claims),
    )


def _token_body(user: User, access_token: str, refresh_token: str) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": _lifetime_seconds("JWT_ACCESS_TOKEN_EXPIRES"),
        "user": accounts.user_to_dict(user),
    }


def _session_response(user: User, access_token: str, refresh_token: str) -> Response:
    # The tokens travel only in HttpOnly cookies; the page gets what it must echo back.
    response = jsonify(
        {
            "user": accounts.user_to_dict(user),
            "csrf": {
                "header": CSRF_HEADER,
                "access": get_csrf_token(access_token),
                "refresh": get_csrf_token(refresh_token),
            },
            "expires_in": _lifetime_seconds("JWT_ACCESS_TOKEN_EXPIRES"),
        }
    )
    set_access_cookies(
        response, access_token, max_age=_lifetime_seconds("JWT_ACCESS_TOKEN_EXPIRES")
    )
    set_refresh_cookies(
        response, refresh_token, max_age=_lifetime_seconds("JWT_REFRESH_TOKEN_EXPIRES")
    )
    return response


def _tokens_response(user: User, access_token: str, refresh_token: str) -> Response:
    """Hand out new tokens the way the request's own token came: cookies or JSON."""
    if get_jwt_request_location() == "cookies":
        return _session_response(user, access_token, refresh_token)
    return jsonify(_token_body(user, access_token, refresh_token))


def _log_in(body: LoginRequest) -> User:
    try:
        user = accounts.authenticate(db.session(), email=body.email, password=body.password)
    except (UnauthorizedError, ForbiddenError) as exc:
        record_login(success=False)
        action = (
            "auth.login_disabled" if isinstance(exc, AccountDisabledError) else "auth.login_failed"
        )
        _audit(action, target_type="email", target_id=_typed_email({"email": body.email}))
        raise
    record_login(success=True)
    return user


def _signed_out() -> Response:
    response = Response(status=204)
    # Harmless for API clients; ends a browser session even if its cookies were sent.
    unset_jwt_cookies(response)
    return response


def _revoke_current_session() -> None:
    session_id = get_jwt()[SESSION_CLAIM]
    try:
        session_store().revoke_session(session_id)
    except SessionStoreUnavailableError:
        # Fail closed: saying "signed out" while the tokens still work would be a lie.
        raise ServiceUnavailableError(_REDIS_DOWN) from None
    _audit("auth.logout", actor=current_user, target_type="session", target_id=session_id)


@bp.post("/register")
@limited(REGISTER_IP, REGISTER_ACCOUNT)
# Any other field (role, is_admin, ...) is refused rather than ignored: registration can never
# grant privileges, and the client should know its field was not applied.
@accepts(body=RegisterRequest)
def register(body: RegisterRequest) -> tuple[dict[str, Any], int]:
    """Create an account: ``{email, password, display_name?}`` -> 201 ``{"user": ...}``."""
    user = accounts.register_user(
        db.session(), email=body.email, password=body.password, display_name=body.display_name
    )
    return {"user": accounts.user_to_dict(user)}, 201


@bp.post("/login")
@limited(LOGIN_IP, LOGIN_ACCOUNT)
@accepts(body=LoginRequest)
def login(body: LoginRequest) -> dict[str, Any]:
    """Exchange ``{email, password}`` for an access and a refresh token of a new session."""
    user = _log_in(body)
    access_token, refresh_token = _issue_tokens(user, new_session_id(), fresh=True)
    return _token_body(user, access_token, refresh_token)


@bp.post("/session")
@limited(LOGIN_IP, LOGIN_ACCOUNT)
@accepts(body=LoginRequest)
def create_session(body: LoginRequest) -> Response:
    """Sign a browser in with ``{email, password}``: tokens in cookies, CSRF tokens in JSON."""
    user = _log_in(body)
    access_token, refresh_token = _issue_tokens(user, new_session_id(), fresh=True)
    return _session_response(user, access_token, refresh_token)


@bp.delete("/session")
@jwt_required(refresh=True, locations=["cookies"])
def delete_session() -> Response:
    """Sign a browser out: revoke its session and clear the cookies.

    Authenticated by the refresh cookie (and its CSRF token), which outlives the access
    cookie, so signing out works however long the page was idle.
    """
    _revoke_current_session()
    return _signed_out()


@bp.post("/refresh")
@jwt_required(refresh=True)
def refresh() -> Response:
    """Exchange a refresh token for a new access and refresh token; the old one is spent.

    Presenting a spent refresh token again revokes the whole session (see
    :mod:`webapp.services.sessions`).
    """
    claims = get_jwt()
    try:
        session_store().rotate(claims)
    except SessionStoreUnavailableError:
        raise ServiceUnavailableError(_REDIS_DOWN) from None
    access_token, refresh_token = _issue_tokens(current_user, claims[SESSION_CLAIM], fresh=False)
    return _tokens_response(current_user, access_token, refresh_token)


@bp.post("/logout")
@jwt_required(verify_type=False)
def logout() -> Response:
    """Revoke the session of the token sent: its access and refresh tokens alike.

    Either token type is accepted here (and only here): a client whose access token has
    expired can still end its session with the refresh token.
    """
    _revoke_current_session()
    return _signed_out()


@bp.post("/logout-all")
@jwt_required()
def logout_all() -> Response:
    """End every session of the caller, on every device, this one included.

    Raising the user's token version revokes every token they hold in the one check every
    service makes on each request, so it works even while Redis is down.
    """
    user = accounts.revoke_all_sessions(db.session(), current_user)
    _audit("auth.sessions_revoked", actor=user, target_type="user", target_id=user.id)
    return _signed_out()


@bp.get("/me")
@jwt_required()
def me() -> dict[str, Any]:
    """Return the authenticated user."""
    return {"user": accounts.user_to_dict(current_user)}


@bp.patch("/me")
@jwt_required()
@accepts(body=ProfileUpdate)
def update_me(body: ProfileUpdate) -> dict[str, Any]:
    """Change the caller's profile: ``{display_name?}``; any other field is refused."""
    user = accounts.update_profile(db.session(), current_user, display_name=body.display_name)
    return {"user": accounts.user_to_dict(user)}


@bp.post("/password")
@limited(PASSWORD_CHANGE)
@jwt_required()
@accepts(body=PasswordChange)
def change_password(body: PasswordChange) -> Response:
    """Change the password: ``{current_password, new_password}``.

    Every token of the user, in every session, stops working; this session continues with
    the new tokens in the response (cookies for a browser session).
    """
    user = accounts.change_password(
        db.session(),
        current_user,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    _audit("auth.password_changed", actor=user, target_type="user", target_id=user.id)
    access_token, refresh_token = _issue_tokens(user, get_jwt()[SESSION_CLAIM], fresh=True)
    return _tokens_response(user, access_token, refresh_token)


# --- personal API keys (they authenticate /v1, the OpenAI-compatible API, and nothing else) ------


@bp.post("/api-keys")
@jwt_required()
@accepts(body=ApiKeyCreate)
def create_api_key(body: ApiKeyCreate) -> tuple[dict[str, Any], int]:
    """Create an API key: ``{name, expires_at?}`` -> 201 with the key, shown this once."""
    created = api_keys.create_key(
        db.session(),
        user=current_user,
        name=body.name,
        expires_at=body.expires_at,
        source_ip=request.remote_addr,
    )
    return {"api_key": api_keys.key_to_dict(created.api_key), "key": created.key}, 201


@bp.get("/api-keys")
@jwt_required()
def list_api_keys() -> dict[str, Any]:
    """List the caller's API keys that are not revoked (prefix, created, expires, last used)."""
    keys = api_keys.list_keys(db.session(), user_id=current_user.id)
    return {"api_keys": [api_keys.key_to_dict(key) for key in keys]}


@bp.delete(f"/api-keys/{_API_KEY}")
@jwt_required()
def revoke_api_key(api_key_id: int) -> Response:
    """Revoke one of the caller's API keys: it stops working at once -> 204."""
    api_keys.revoke_key(
        db.session(), user=current_user, key_id=api_key_id, source_ip=request.remote_addr
    )
    return Response(status=204)
