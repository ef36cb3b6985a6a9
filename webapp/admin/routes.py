"""Routes of the admin service, under ``/api/v1/admin``; every one is for admins only.

Thin: each parses its query or body, calls a service and serialises the result. The services
record the audit events (with the admin as actor and ``request.remote_addr`` as the source
address, which ``ProxyFix`` takes from nginx's ``X-Forwarded-For``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from flask_jwt_extended import current_user

from webapp.errors import ValidationError
from webapp.extensions import MIGRATIONS_DIR, db, get_redis
from webapp.models import AuditEvent, Conversation, User, id_converter, max_id
from webapp.request_body import read_json_object
from webapp.security import admin_required
from webapp.services import accounts, audit, stats, system_status, usage, users_admin
from webapp.services import conversations as conversation_service
from webapp.validation import (
    bounded_int,
    check_text,
    optional_string,
    query_parameters,
    reject_unknown_fields,
    required_string,
)

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

# Ids beyond their column's range can match nothing: 404 in routing, not a database error.
_USER = id_converter("user_id", User.id)
_CONVERSATION = id_converter("conversation_id", Conversation.id)
_BOOLEANS = {"true": True, "false": False}
_FILTER_MAX_LENGTH = 254


def _params(*allowed: str) -> dict[str, str]:
    return query_parameters(request.args.to_dict(flat=False), allowed)


def _boolean(params: dict[str, str], name: str) -> bool | None:
    if name not in params:
        return None
    if params[name] not in _BOOLEANS:
        raise ValidationError(f"{name} must be true or false", field=name)
    return _BOOLEANS[params[name]]


def _text(params: dict[str, str], name: str) -> str | None:
    if name not in params:
        return None
    # A filter value is compared in SQL: NUL or lone surrogates would fail there as a 500.
    return check_text(params[name], name, min_length=1, max_length=_FILTER_MAX_LENGTH)


def _id(params: dict[str, str], name: str, column: Any) -> int | None:
    """Return an optional id parameter (a filter or a keyset cursor) within its column's range."""
    if name not in params:
        return None
    return bounded_int(params[name], name, minimum=1, maximum=max_id(column))


def _limit(params: dict[str, str], default: int, maximum: int) -> int:
    if "limit" not in params:
        return default
    return bounded_int(params["limit"], "limit", minimum=1, maximum=maximum)


def _next(cursor: int | None) -> str | None:
    return None if cursor is None else str(cursor)


# --- statistics and status ----------------------------------------------------------------------


@bp.get("/stats")
@admin_required
def get_stats() -> dict[str, int]:
    """Return counts of users, conversations and messages."""
    return stats.collect_stats(db.session())


@bp.get("/status")
@admin_required
def get_status() -> dict[str, Any]:
    """Report the database, Redis, model provider, migrations and the three services."""
    return system_status.collect_status(
        engine=db.engine,
        redis_client=get_redis(current_app),
        settings=current_app.extensions["settings"],
        migrations_dir=MIGRATIONS_DIR,
    )


@bp.get("/usage")
@admin_required
def get_usage() -> dict[str, Any]:
    """Usage over a range of UTC days: ``since``, ``until`` (YYYY-MM-DD), ``user_id``, ``top``."""
    params = _params("since", "until", "user_id", "top")
    days = usage.parse_range(params.get("since"), params.get("until"))
    user_id = _id(params, "user_id", User.id)
    top = usage.TOP_USERS_DEFAULT
    if "top" in params:
        top = bounded_int(params["top"], "top", minimum=1, maximum=usage.TOP_USERS_MAX)
    return usage.usage_report(db.session(), days, user_id=user_id, top=top)


# --- audit log ------------------------------------------------------------------------------------


@bp.get("/audit")
@admin_required
def list_audit_events() -> dict[str, Any]:
    """List audit events, newest first, filtered; ``cursor`` is the previous ``next_cursor``."""
    params = _params(
        "action", "actor_id", "target_type", "target_id", "since", "until", "cursor", "limit"
    )
    criteria = audit.AuditFilter(
        action=_text(params, "action"),
        actor_id=_id(params, "actor_id", AuditEvent.actor_id),
        target_type=_text(params, "target_type"),
        target_id=_text(params, "target_id"),
        since=audit.parse_instant(params["since"], "since") if "since" in params else None,
        until=audit.parse_instant(params["until"], "until") if "until" in params else None,
    )
    events, next_cursor = audit.list_events(
        db.session(),
        criteria,
        before_id=_id(params, "cursor", AuditEvent.id),
        limit=_limit(params, audit.LIST_LIMIT_DEFAULT, audit.LIST_LIMIT_MAX),
    )
    return {"events": [audit.event_to_dict(e) for e in events], "next_cursor": _next(next_cursor)}


# --- users ----------------------------------------------------------------------------------------


@bp.get("/users")
@admin_required
def list_users() -> dict[str, Any]:
    """List users in id order, filtered by ``q`` (email or name), ``active`` and ``role``.

    ``cursor`` is the previous page's ``next_cursor``.
    """
    params = _params("q", "active", "role", "limit", "cursor")
    users, next_cursor = users_admin.list_users(
        db.session(),
        users_admin.UserFilter(
            query=params.get("q"), active=_boolean(params, "active"), role=params.get("role")
        ),
        after_id=_id(params, "cursor", User.id),
        limit=_limit(params, users_admin.LIST_LIMIT_DEFAULT, users_admin.LIST_LIMIT_MAX),
    )
    return {"users": [accounts.user_to_dict(u) for u in users], "next_cursor": _next(next_cursor)}


@bp.get(f"/users/{_USER}")
@admin_required
def get_user(user_id: int) -> dict[str, Any]:
    """Return a user with a summary of their conversations and usage."""
    user = accounts.require_user(db.session(), user_id)
    return {
        "user": accounts.user_to_dict(user),
        "usage": users_admin.usage_summary(db.session(), user),
    }


@bp.patch(f"/users/{_USER}")
@admin_required
def update_user(user_id: int) -> dict[str, Any]:
    """Change a user's role: ``{"role": "admin" | "user"}``; 409 for the last active admin."""
    data = read_json_object()
    reject_unknown_fields(data, ("role",))
    user = users_admin.change_role(
        db.session(),
        actor=current_user,
        user_id=user_id,
        role=required_string(data, "role"),
        source_ip=request.remote_addr,
    )
    return {"user": accounts.user_to_dict(user)}


@bp.delete(f"/users/{_USER}")
@admin_required
def delete_user(user_id: int) -> dict[str, Any]:
    """Delete a user with their conversations and messages; 409 for the last active admin."""
    deleted = users_admin.delete_user(
        db.session(), actor=current_user, user_id=user_id, source_ip=request.remote_addr
    )
    return {"deleted": deleted}


@bp.post(f"/users/{_USER}/disable")
@admin_required
def disable_user(user_id: int) -> dict[str, Any]:
    """Disable an account: it can no longer log in and every token it holds stops working.

    409 for the last active admin; 404 for an unknown id.
    """
    user = accounts.set_user_active(
        db.session(),
        user_id=user_id,
        active=False,
        actor=current_user,
        source_ip=request.remote_addr,
    )
    return {"user": accounts.user_to_dict(user)}


@bp.post(f"/users/{_USER}/enable")
@admin_required
def enable_user(user_id: int) -> dict[str, Any]:
    """Enable a disabled account; it must log in again (its old tokens stay revoked)."""
    user = accounts.set_user_active(
        db.session(),
        user_id=user_id,
        active=True,
        actor=current_user,
        source_ip=request.remote_addr,
    )
    return {"user": accounts.user_to_dict(user)}


@bp.post(f"/users/{_USER}/password")
@admin_required
def reset_password(user_id: int) -> dict[str, Any]:
    """Set ``{"password"}``, or generate one with ``{}``; every session of the user ends.

    A generated password is in this response only, once: it is neither stored nor logged.
    """
    data = read_json_object(allow_empty=True)
    reject_unknown_fields(data, ("password",))
    user, generated = users_admin.reset_password(
        db.session(),
        actor=current_user,
        user_id=user_id,
        password=optional_string(data, "password"),
        source_ip=request.remote_addr,
    )
    body: dict[str, Any] = {"user": accounts.user_to_dict(user)}
    if generated is not None:
        body["password"] = generated.value
    return body


# --- a user's conversations, read-only ------------------------------------------------------------


@bp.get(f"/users/{_USER}/conversations")
@admin_required
def list_user_conversations(user_id: int) -> dict[str, Any]:
    """List a user's conversations like the user sees them: ``limit``, ``cursor``, ``q``."""
    params = _params("limit", "cursor", "q")
    # Checked before the user is looked up: a bad limit is a 400 whether or not they exist.
    limit = _limit(
        params, conversation_service.LIST_LIMIT_DEFAULT, conversation_service.LIST_LIMIT_MAX
    )
    accounts.require_user(db.session(), user_id)
    page = conversation_service.list_conversations(
        db.session(),
        user_id=user_id,
        limit=limit,
        cursor=params.get("cursor"),
        query=params.get("q"),
    )
    return conversation_service.page_to_dict(page)


@bp.get(f"/users/{_USER}/conversations/{_CONVERSATION}")
@admin_required
def get_user_conversation(user_id: int, conversation_id: int) -> dict[str, Any]:
    """Return one of a user's conversations with its messages, oldest first (audited)."""
    conversation = users_admin.read_conversation(
        db.session(),
        actor=current_user,
        user_id=user_id,
        conversation_id=conversation_id,
        source_ip=request.remote_addr,
    )
    return {"conversation": conversation_service.conversation_with_messages_to_dict(conversation)}
