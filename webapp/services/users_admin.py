"""User management for the admin console: list, inspect, change role, reset password, delete.

Every change records an audit event in the same transaction (:mod:`webapp.services.audit`).
The last active admin can never be demoted, disabled or deleted (409): the system must keep a
way in through the API (``chatbot create-admin`` remains for operators).

Deleting a user deletes their conversations and messages and their ``daily_usage`` rows (all
by ``ON DELETE CASCADE``): usage figures for past days no longer include them. The audit log
keeps every event about them, with their email address at the time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from webapp.errors import ConflictError, ValidationError
from webapp.models import USER_ROLES, Conversation, DailyUsage, Message, User, isoformat_utc
from webapp.services import accounts, audit
from webapp.services.audit import Actor
from webapp.services.conversations import get_conversation, like_pattern
from webapp.validation import check_text

__all__ = [
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "QUOTA_MAX",
    "UNCHANGED",
    "GeneratedPassword",
    "UserFilter",
    "admin_user_to_dict",
    "delete_user",
    "list_users",
    "read_conversation",
    "reset_password",
    "update_user",
    "usage_summary",
]

LIST_LIMIT_DEFAULT = 50
# The users.daily_token_quota column is an INTEGER.
QUOTA_MAX = 2**31 - 1
UNCHANGED: Any = object()
"""A field :func:`update_user` leaves as it is (None sets the quota back to the global one)."""
LIST_LIMIT_MAX = 200
SEARCH_MAX_LENGTH = 200
# Length of a generated password in URL-safe base64 characters (6 bits each): 132 bits.
_GENERATED_PASSWORD_LENGTH = 22


@dataclass(frozen=True)
class UserFilter:
    """Which users to list; the criteria combine with AND.

    Attributes:
        query: Text contained in the email or the display name, ignoring case.
        active: Only enabled (True) or disabled (False) accounts.
        role: Only this role.
    """

    query: str | None = None
    active: bool | None = None
    role: str | None = None


@dataclass(frozen=True)
class GeneratedPassword:
    """A password the service generated; shown once to the admin, never stored or logged.

    Attributes:
        value: The password.
    """

    value: str

    def __repr__(self) -> str:
        """Keep the value out of tracebacks and debug logs."""
        return "GeneratedPassword(value='[redacted]')"


def list_users(
    session: Session,
    criteria: UserFilter,
    *,
    after_id: int | None = None,
    limit: int = LIST_LIMIT_DEFAULT,
) -> tuple[list[User], int | None]:
    """Return a page of users in id order and the cursor of the next page.

    Args:
        session: Database session.
        criteria: The filter.
        after_id: Only users with a larger id (the previous page's ``next_after``).
        limit: Page size, 1 to ``LIST_LIMIT_MAX``.

    Returns:
        The users, and the ``after_id`` of the next page (None on the last page).

    Raises:
        ValidationError: Naming ``limit``, ``q`` or ``role`` if one is invalid.
    """
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationError(f"limit must be between 1 and {LIST_LIMIT_MAX}", field="limit")
    statement = select(User)
    if criteria.query is not None and criteria.query.strip():
        text = check_text(criteria.query.strip(), "q", min_length=1, max_length=SEARCH_MAX_LENGTH)
        pattern = like_pattern(text)
        statement = statement.where(
            or_(
                User.email.ilike(pattern, escape="\\"),
                User.display_name.ilike(pattern, escape="\\"),
            )
        )
    if criteria.active is not None:
        statement = statement.where(User.is_active.is_(criteria.active))
    if criteria.role is not None:
        statement = statement.where(User.role == _check_role(criteria.role))
    if after_id is not None:
        statement = statement.where(User.id > after_id)
    rows = list(session.scalars(statement.order_by(User.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def _check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise ValidationError(f"role must be one of {', '.join(USER_ROLES)}", field="role")
    return role


def usage_summary(session: Session, user: User, *, now: datetime | None = None) -> dict[str, Any]:
    """Summarise what a user has stored and spent.

    Args:
        session: Database session.
        user: The user.
        now: The current time (UTC "today" for ``tokens_today``); defaults to now.

    Returns:
        ``conversations``, ``messages`` (sent by the user), ``replies``, ``tokens_in`` and
        ``tokens_out`` (of the stored replies), ``quota_tokens_today`` (what today's quota
        counted) and ``last_message_at`` (or None).
    """
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    conversations = session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.user_id == user.id)
    )
    row = session.execute(
        select(
            func.count().filter(Message.role == "user"),
            func.count().filter(Message.role == "assistant"),
            func.coalesce(func.sum(Message.tokens_in), 0),
            func.coalesce(func.sum(Message.tokens_out), 0),
            func.max(Message.created_at),
        )
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Conversation.user_id == user.id)
    ).one()
    quota = session.scalar(
        select(func.coalesce(func.sum(DailyUsage.tokens_in + DailyUsage.tokens_out), 0)).where(
            DailyUsage.user_id == user.id, DailyUsage.day == today
        )
    )
    return {
        "conversations": conversations or 0,
        "messages": row[0],
        "replies": row[1],
        "tokens_in": int(row[2]),
        "tokens_out": int(row[3]),
        "quota_tokens_today": int(quota or 0),
        "last_message_at": None if row[4] is None else isoformat_utc(row[4]),
    }


def _lock(session: Session, user_id: int) -> User:
    user = accounts.require_user(session, user_id)
    if user.is_admin and user.is_active:
        # Every active admin row first, in id order, as accounts.set_user_active does: two
        # admins acting on each other lock in the same order and cannot deadlock.
        accounts.lock_other_active_admins(session, user)
    # Then this row, re-read: what a concurrent change committed meanwhile counts.
    session.refresh(user, with_for_update=True)
    return user


def _last_active_admin(session: Session, user: User) -> bool:
    return user.is_admin and user.is_active and not accounts.lock_other_active_admins(session, user)


def admin_user_to_dict(user: User) -> dict[str, Any]:
    """Return a user as admins see them: the public fields and the daily token quota.

    Args:
        user: The user.

    Returns:
        :func:`webapp.services.accounts.user_to_dict`'s fields and ``daily_token_quota`` (null:
        the global LLM_DAILY_TOKEN_QUOTA; 0: unlimited).
    """
    return {**accounts.user_to_dict(user), "daily_token_quota": user.daily_token_quota}


def _check_quota(quota: Any) -> int | None:
    if quota is None:
        return None
    if isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota <= QUOTA_MAX:
        raise ValidationError(
            f"daily_token_quota must be a whole number from 0 to {QUOTA_MAX}, or null",
            field="daily_token_quota",
        )
    return quota


def update_user(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    role: str | Any = UNCHANGED,
    daily_token_quota: int | Any | None = UNCHANGED,
) -> User:
    """Change a user's role (promote, demote) and/or their daily token quota.

    A role takes effect on the user's next request: it is read from the database each time,
    never from the token. The quota counts from the user's next reply.

    Args:
        session: Database session; committed.
        actor: The admin doing it, and from where.
        user_id: The account to change.
        role: ``user`` or ``admin``; ``UNCHANGED`` leaves it.
        daily_token_quota: Tokens a UTC day (0: unlimited; None: the global quota);
            ``UNCHANGED`` leaves it.

    Returns:
        The updated user (nothing recorded for what already was so).

    Raises:
        ValidationError: If ``role`` is not a role or the quota is out of range.
        NotFoundError: If there is no such user.
        ConflictError: If this would demote the last active admin.
    """
    if role is not UNCHANGED:
        _check_role(role)
    if daily_token_quota is not UNCHANGED:
        daily_token_quota = _check_quota(daily_token_quota)
    user = _lock(session, user_id)
    if role is not UNCHANGED and user.role != role:
        if _last_active_admin(session, user):
            session.rollback()
            raise ConflictError("the last active admin cannot be demoted")
        previous, user.role = user.role, role
        details = {"from": previous, "to": role}
        audit.record_account_change(
            session, "admin.role_changed", actor=actor, user=user, **details
        )
    if daily_token_quota is not UNCHANGED and user.daily_token_quota != daily_token_quota:
        previous_quota, user.daily_token_quota = user.daily_token_quota, daily_token_quota
        audit.record_account_change(
            session,
            "admin.quota_changed",
            actor=actor,
            user=user,
            **{"from": previous_quota, "to": daily_token_quota},
        )
    session.commit()
    return user


def reset_password(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    password: str | None,
) -> tuple[User, GeneratedPassword | None]:
    """Set a user's password and revoke every session they have.

    Args:
        session: Database session; committed.
        actor: The admin doing it, and from where.
        user_id: The account.
        password: The new password, checked against the policy; None to generate a random one.

    Returns:
        The user, and the generated password (None when ``password`` was given). The password
        is in no log and no audit event; the caller shows it once.

    Raises:
        ValidationError: If ``password`` breaks the policy (field ``password``).
        NotFoundError: If there is no such user.
    """
    user = _lock(session, user_id)
    generated = None
    if password is None:
        # 132 random bits; regenerated in the (very rare) case it is all of one character kind.
        while True:
            value = secrets.token_urlsafe(_GENERATED_PASSWORD_LENGTH)[:_GENERATED_PASSWORD_LENGTH]
            try:
                accounts.check_password_policy(value, email=user.email)
            except ValidationError:
                continue
            break
        generated = GeneratedPassword(value)
        password = value
    else:
        try:
            accounts.check_password_policy(password, email=user.email)
        except ValidationError:
            session.rollback()
            raise
    accounts.set_password(user, password)
    audit.record_account_change(
        session,
        "admin.password_reset",
        actor=actor,
        user=user,
        generated=generated is not None,
    )
    session.commit()
    return user, generated


def delete_user(session: Session, *, actor: Actor, user_id: int) -> dict[str, Any]:
    """Delete a user with their conversations, messages and daily usage rows.

    Args:
        session: Database session; committed.
        actor: The admin doing it, and from where (may be the user, if another active admin
            remains).
        user_id: The account.

    Returns:
        What was deleted: ``{"id", "email", "conversations", "messages"}``.

    Raises:
        NotFoundError: If there is no such user.
        ConflictError: If it is the last active admin.
    """
    user = _lock(session, user_id)
    if _last_active_admin(session, user):
        session.rollback()
        raise ConflictError("the last active admin cannot be deleted")
    counts = session.execute(
        select(
            func.count(func.distinct(Conversation.id)),
            func.count(Message.id),
        )
        .select_from(Conversation)
        .outerjoin(Message, Message.conversation_id == Conversation.id)
        .where(Conversation.user_id == user.id)
    ).one()
    deleted = {
        "id": user.id,
        "email": user.email,
        "conversations": counts[0],
        "messages": counts[1],
    }
    audit.record_account_change(
        session,
        "admin.user_deleted",
        actor=actor,
        user=user,
        conversations=deleted["conversations"],
        messages=deleted["messages"],
    )
    session.flush()
    session.execute(delete(User).where(User.id == user.id))
    session.expunge(user)
    session.commit()
    return deleted


def read_conversation(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    conversation_id: int,
) -> Conversation:
    """Return one of a user's conversations for an admin to read, and record that they did.

    Reading someone's conversation is recorded (``admin.conversation_viewed``): the user's
    privacy is only as good as the trail of who looked.

    Args:
        session: Database session; committed (the audit event).
        actor: The admin reading, and from where.
        user_id: The conversation's owner.
        conversation_id: The conversation.

    Returns:
        The conversation (its messages load on access, oldest first).

    Raises:
        NotFoundError: If the user has no such conversation.
    """
    conversation = get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    audit.record(
        session,
        action="admin.conversation_viewed",
        actor=actor.user,
        target_type="conversation",
        target_id=conversation.id,
        source_ip=actor.source_ip,
        details={"user_id": user_id},
    )
    session.commit()
    return conversation
