"""Routes of the admin service, under ``/api/v1/admin``; every one is for admins only.

Thin: each parses its query or body, calls a service and serialises the result. The services
record the audit events (with the admin as actor and ``request.remote_addr`` as the source
address, which ``ProxyFix`` takes from nginx's ``X-Forwarded-For``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from flask_jwt_extended import current_user

from webapp.extensions import MIGRATIONS_DIR, db, get_redis
from webapp.models import Conversation, User
from webapp.request_models.admin import (
    AuditQuery,
    PasswordReset,
    UsageQuery,
    UserConversationsQuery,
    UserListQuery,
    UserUpdate,
)
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.security import admin_required
from webapp.services import (
    accounts,
    audit,
    catalogue_admin,
    stats,
    system_status,
    usage,
    users_admin,
)
from webapp.services import conversations as conversation_service

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

# Ids beyond their column's range can match nothing: 404 in routing, not a database error.
_USER = id_rule("user_id", User.id)
_CONVERSATION = id_rule("conversation_id", Conversation.id)


def acting_admin() -> audit.Actor:
    """Return the admin making this request, and from where, for the audit log."""
    return audit.Actor(user=current_user, source_ip=request.remote_addr)


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
    """Report the database, Redis, model providers, migrations and the three services."""
    settings = current_app.extensions["settings"]
    engine = db.engine
    return system_status.collect_status(
        engine=engine,
        redis_client=get_redis(current_app),
        settings=settings,
        migrations_dir=MIGRATIONS_DIR,
        providers=lambda: catalogue_admin.load_providers(engine, settings),
    )


@bp.get("/usage")
@admin_required
@accepts(query=UsageQuery)
def get_usage(query: UsageQuery) -> dict[str, Any]:
    """Usage over a range of UTC days: ``since``, ``until`` (YYYY-MM-DD), ``user_id``, ``top``."""
    days = usage.parse_range(query.since, query.until)
    return usage.usage_report(db.session(), days, user_id=query.user_id, top=query.top)


# --- audit log ------------------------------------------------------------------------------------


@bp.get("/audit")
@admin_required
@accepts(query=AuditQuery)
def list_audit_events(query: AuditQuery) -> dict[str, Any]:
    """List audit events, newest first, filtered; ``cursor`` is the previous ``next_cursor``."""
    criteria = audit.AuditFilter(
        action=query.action,
        actor_id=query.actor_id,
        target_type=query.target_type,
        target_id=query.target_id,
        since=None if query.since is None else audit.parse_instant(query.since, "since"),
        until=None if query.until is None else audit.parse_instant(query.until, "until"),
    )
    events, next_cursor = audit.list_events(
        db.session(), criteria, before_id=query.cursor, limit=query.limit
    )
    return {"events": [audit.event_to_dict(e) for e in events], "next_cursor": _next(next_cursor)}


# --- users ----------------------------------------------------------------------------------------


@bp.get("/users")
@admin_required
@accepts(query=UserListQuery)
def list_users(query: UserListQuery) -> dict[str, Any]:
    """List users in id order, filtered by ``q`` (email or name), ``active`` and ``role``.

    ``cursor`` is the previous page's ``next_cursor``.
    """
    users, next_cursor = users_admin.list_users(
        db.session(),
        users_admin.UserFilter(query=query.q, active=query.active, role=query.role),
        after_id=query.cursor,
        limit=query.limit,
    )
    return {
        "users": [users_admin.admin_user_to_dict(u) for u in users],
        "next_cursor": _next(next_cursor),
    }


@bp.get(f"/users/{_USER}")
@admin_required
def get_user(user_id: int) -> dict[str, Any]:
    """Return a user with a summary of their conversations and usage."""
    user = accounts.require_user(db.session(), user_id)
    return {
        "user": users_admin.admin_user_to_dict(user),
        "usage": users_admin.usage_summary(db.session(), user),
    }


@bp.patch(f"/users/{_USER}")
@admin_required
@accepts(body=UserUpdate)
def update_user(user_id: int, body: UserUpdate) -> dict[str, Any]:
    """Change a user's ``role`` and/or ``daily_token_quota``; 409 for the last active admin."""
    sent = body.model_fields_set
    user = users_admin.update_user(
        db.session(),
        actor=acting_admin(),
        user_id=user_id,
        role=body.role if "role" in sent else users_admin.UNCHANGED,
        daily_token_quota=(
            body.daily_token_quota if "daily_token_quota" in sent else users_admin.UNCHANGED
        ),
    )
    return {"user": users_admin.admin_user_to_dict(user)}


@bp.delete(f"/users/{_USER}")
@admin_required
def delete_user(user_id: int) -> dict[str, Any]:
    """Delete a user with their conversations and messages; 409 for the last active admin."""
    deleted = users_admin.delete_user(db.session(), actor=acting_admin(), user_id=user_id)
    return {"deleted": deleted}


def _set_active(user_id: int, *, active: bool) -> dict[str, Any]:
    user = accounts.set_user_active(
        db.session(), user_id=user_id, active=active, actor=acting_admin()
    )
    return {"user": users_admin.admin_user_to_dict(user)}


@bp.post(f"/users/{_USER}/disable")
@admin_required
def disable_user(user_id: int) -> dict[str, Any]:
    """Disable an account: it can no longer log in and every token it holds stops working.

    409 for the last active admin; 404 for an unknown id.
    """
    return _set_active(user_id, active=False)


@bp.post(f"/users/{_USER}/enable")
@admin_required
def enable_user(user_id: int) -> dict[str, Any]:
    """Enable a disabled account; it must log in again (its old tokens stay revoked)."""
    return _set_active(user_id, active=True)


@bp.post(f"/users/{_USER}/password")
@admin_required
@accepts(body=PasswordReset, body_required=False)
def reset_password(user_id: int, body: PasswordReset) -> dict[str, Any]:
    """Set ``{"password"}``, or generate one with ``{}``; every session of the user ends.

    A generated password is in this response only, once: it is neither stored nor logged.
    """
    user, generated = users_admin.reset_password(
        db.session(),
        actor=acting_admin(),
        user_id=user_id,
        password=body.password,
    )
    result: dict[str, Any] = {"user": users_admin.admin_user_to_dict(user)}
    if generated is not None:
        result["password"] = generated.value
    return result


# --- a user's conversations, read-only ------------------------------------------------------------


@bp.get(f"/users/{_USER}/conversations")
@admin_required
@accepts(query=UserConversationsQuery)
def list_user_conversations(user_id: int, query: UserConversationsQuery) -> dict[str, Any]:
    """List a user's conversations like the user sees them: ``limit``, ``cursor``, ``q``."""
    # The query is checked before the user is looked up: a 400 whether or not they exist.
    accounts.require_user(db.session(), user_id)
    page = conversation_service.list_conversations(
        db.session(),
        user_id=user_id,
        limit=query.limit,
        cursor=query.cursor,
        query=query.q,
    )
    return conversation_service.page_to_dict(page)


@bp.get(f"/users/{_USER}/conversations/{_CONVERSATION}")
@admin_required
def get_user_conversation(user_id: int, conversation_id: int) -> dict[str, Any]:
    """Return one of a user's conversations with its messages, oldest first (audited)."""
    conversation = users_admin.read_conversation(
        db.session(), actor=acting_admin(), user_id=user_id, conversation_id=conversation_id
    )
    return {"conversation": conversation_service.conversation_with_messages_to_dict(conversation)}
