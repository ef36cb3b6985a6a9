"""The audit log: an append-only record of admin actions and security events.

:func:`record` adds an :class:`~webapp.models.AuditEvent` to the caller's session without
committing, so the event is stored in the same transaction as the change it describes (or
not at all if that change is rolled back). Events about something that did *not* happen (a
failed login, a refused refresh) are recorded and committed on their own by the caller.

The database refuses every UPDATE and DELETE of an audit row (trigger of migration 0004).
The list of actions, with what each means, is :data:`ACTIONS` (and docs/admin.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.errors import ValidationError
from webapp.models import AUDIT_ACTION_MAX_LENGTH, AuditEvent, User, isoformat_utc

__all__ = [
    "ACTIONS",
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "AuditFilter",
    "event_to_dict",
    "list_events",
    "parse_instant",
    "record",
    "redact",
]

ACTIONS: dict[str, str] = {
    "auth.login_failed": "Wrong email or password (target: the email as typed, normalized).",
    "auth.login_disabled": "Right password of a disabled account.",
    "auth.lockout": "Login refused by the rate limit (too many attempts).",
    "auth.logout": "A session logged out (its tokens are revoked).",
    "auth.password_changed": "A user changed their own password (every session revoked).",
    "auth.refresh_reuse": "A rotated refresh token was presented again (possible theft).",
    "auth.sessions_revoked": "A user signed out everywhere (every session revoked).",
    "admin.user_disabled": "An admin disabled an account (every session revoked).",
    "admin.user_enabled": "An admin enabled an account.",
    "admin.role_changed": "An admin promoted or demoted an account (details: from, to).",
    "admin.password_reset": "An admin reset an account's password (every session revoked).",
    "admin.quota_changed": (
        "An admin set an account's daily token quota (details: from, to; null: the global"
        " quota, 0: unlimited)."
    ),
    "admin.user_deleted": "An admin deleted an account with its conversations.",
    "admin.conversation_viewed": "An admin read one of a user's conversations.",
    "cli.provider_keys_rekeyed": (
        "`chatbot catalogue rekey` re-encrypted the stored provider keys with the first"
        " PROVIDER_KEY_SECRETS key (details: providers)."
    ),
    "api_key.create": "A user created a personal API key (details: name, prefix, expires_at).",
    "api_key.revoke": (
        "A personal API key was revoked, by its owner or an admin (the actor; details: name,"
        " prefix, owner_id)."
    ),
    "cli.admin_provisioned": (
        "`chatbot create-admin` created, promoted or reset an admin account (no actor: the"
        " operator on the host; details: created, promoted, credentials_reset)."
    ),
}
"""Every action this application records. Others (``admin.webhook_*``) may be added by
modules that call :func:`record`; the column accepts any dotted name. The model catalogue's
(``provider.*``, ``model.*``) are in :data:`webapp.services.catalogue_admin.ACTIONS`."""

# Values under keys like these are never stored, whatever a caller passes in ``details``.
_SECRET_KEY_PARTS = ("password", "token", "secret", "key", "authorization", "cookie")
REDACTED = "[redacted]"
_TEXT_MAX_LENGTH = 254
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200


def redact(details: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``details`` with the value of every secret-looking key replaced, recursively.

    Args:
        details: JSON-serialisable mapping, or None.

    Returns:
        A new mapping, safe to store and to show to admins.
    """
    if not details:
        return {}
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if any(part in str(key).lower() for part in _SECRET_KEY_PARTS):
            clean[str(key)] = REDACTED
        elif isinstance(value, dict):
            clean[str(key)] = redact(value)
        else:
            clean[str(key)] = value
    return clean


def _address(source_ip: str | None) -> str | None:
    # The column is INET: something that is not an address (a misconfigured proxy header)
    # must not make the INSERT, and with it the audited action, fail.
    if not source_ip:
        return None
    try:
        return str(ipaddress.ip_address(source_ip))
    except ValueError:
        return None


def _short(value: str | None) -> str | None:
    # Client-typed text (a login's email) may hold what PostgreSQL cannot store: NUL, lone
    # surrogates. The event is still recorded, with those characters dropped or replaced.
    if value is None:
        return None
    storable = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return storable[:_TEXT_MAX_LENGTH]


def record(
    session: Session,
    *,
    action: str,
    actor: User | None = None,
    actor_id: int | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    source_ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to ``session``, without committing (the caller's transaction).

    Args:
        session: Database session; the caller commits.
        action: Dotted action name, for example ``admin.user_disabled`` (see :data:`ACTIONS`).
        actor: The user who acted; its id and email are copied (the email as a snapshot, kept
            if the account is later renamed or deleted).
        actor_id: The actor's id when no ``User`` is at hand (ignored if ``actor`` is given).
        target_type: What was acted upon: ``user``, ``session``, ``webhook``...
        target_id: Its id (stored as text: an email for a failed login, a session id...).
        source_ip: The client's address as the app computes it (``request.remote_addr``
            behind ``ProxyFix``); anything that is not an IP address is stored as null.
        details: Small JSON object; values under secret-looking keys are redacted.

    Returns:
        The pending event.

    Raises:
        ValueError: If ``action`` is empty or too long (a programming error).
    """
    if not action or len(action) > AUDIT_ACTION_MAX_LENGTH:
        raise ValueError(f"invalid audit action: {action!r}")
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor is not None else actor_id,
        actor_email=actor.email if actor is not None else None,
        target_type=_short(target_type),
        target_id=_short(None if target_id is None else str(target_id)),
        source_ip=_address(source_ip),
        details=redact(details),
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class Actor:
    """The admin acting, for the audit log.

    Attributes:
        user: The admin.
        source_ip: The client's address.
    """

    user: User
    source_ip: str | None = None


def record_account_change(
    session: Session, action: str, *, actor: Actor, user: User, **details: Any
) -> AuditEvent:
    """Add the audit event of an admin's change to an account (see `record`).

    Args:
        session: Database session; the caller commits.
        action: Dotted action name (``admin.role_changed``).
        actor: The admin who acted, and from where.
        user: The account changed; its id is the target, its email the first detail.
        **details: Further details (``from``, ``to``).

    Returns:
        The pending event.
    """
    return record(
        session,
        action=action,
        actor=actor.user,
        target_type="user",
        target_id=user.id,
        source_ip=actor.source_ip,
        details={"email": user.email, **details},
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which events to list; every criterion is optional and they combine with AND.

    Attributes:
        action: An exact action, or a prefix ending in ``.*`` (``auth.*``).
        actor_id: Only events of this actor.
        target_type: Only events about this kind of object.
        target_id: Only events about this object (usually with ``target_type``).
        since: Only events at or after this time.
        until: Only events strictly before this time.
    """

    action: str | None = None
    actor_id: int | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(
    session: Session, criteria: AuditFilter, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[AuditEvent], int | None]:
    """Return one page of events, newest first, and the cursor of the next page.

    Keyset pagination on the id: a page is stable while new events are appended.

    Args:
        session: Database session.
        criteria: The filter.
        before_id: Only events with a smaller id (the previous page's cursor).
        limit: Page size.

    Returns:
        The events, and the ``before_id`` of the next page (None on the last page).
    """
    query = select(AuditEvent)
    if criteria.action is not None:
        if criteria.action.endswith(".*"):
            prefix = criteria.action[:-1].replace("\\", "\\\\").replace("%", "\\%")
            query = query.where(AuditEvent.action.like(prefix.replace("_", "\\_") + "%"))
        else:
            query = query.where(AuditEvent.action == criteria.action)
    if criteria.actor_id is not None:
        query = query.where(AuditEvent.actor_id == criteria.actor_id)
    if criteria.target_type is not None:
        query = query.where(AuditEvent.target_type == criteria.target_type)
    if criteria.target_id is not None:
        query = query.where(AuditEvent.target_id == criteria.target_id)
    if criteria.since is not None:
        query = query.where(AuditEvent.created_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(AuditEvent.created_at < criteria.until)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """Return the JSON representation of an audit event.

    Args:
        event: The event.

    Returns:
        Its columns, with ``created_at`` in UTC ISO 8601 and ``source_ip`` as text.
    """
    return {
        "id": event.id,
        "created_at": isoformat_utc(event.created_at),
        "action": event.action,
        "actor_id": event.actor_id,
        "actor_email": event.actor_email,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "source_ip": None if event.source_ip is None else str(event.source_ip),
        "details": event.details or {},
    }


def parse_instant(value: str, name: str) -> datetime:
    """Parse an ISO 8601 time with a UTC offset (``2026-01-31T12:00:00Z``) or a UTC date.

    Args:
        value: The text of a query parameter.
        name: The parameter's name, for the error.

    Returns:
        An aware datetime (midnight UTC for a date).

    Raises:
        ValidationError: Naming ``name`` if the text is not such a time.
    """
    try:
        if len(value) > 64:
            raise ValueError(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or (parsed.tzinfo is None and len(value) != 10):
        raise ValidationError(
            f"{name} must be an ISO 8601 time with a UTC offset, such as"
            " 2026-01-31T12:00:00Z, or a date (YYYY-MM-DD, midnight UTC)",
            field=name,
        )
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
