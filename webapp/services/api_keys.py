"""Personal API keys: the credentials of the OpenAI-compatible API (``/v1``) and nothing else.

A key is ``cbk_`` followed by 40 characters of ``secrets.token_urlsafe`` (240 random bits). It is
shown once, when it is created; the database keeps only its SHA-256 (a key has far too much
entropy for a slow hash to add anything, and a lookup by hash is one index probe per request)
and its first ``PREFIX_LENGTH`` characters, so that lists can tell keys apart.

A key authenticates while it is not revoked, not expired and its owner is active: all three are
checked on every request, in the statement that finds the key, so revoking a key or disabling
its owner takes effect at the next request. ``last_used_at`` is written at most once a minute
per key (a conditional UPDATE, so concurrent workers write it once too): a busy client does not
turn every request into a write.

Every creation and revocation is in the audit log (``api_key.create``, ``api_key.revoke``),
with the acting user (the owner, or the admin who revoked someone's key). Plain Python: nothing
here knows of Flask's request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from webapp.errors import ConflictError, NotFoundError, ValidationError
from webapp.models import ApiKey, User, isoformat_utc, utcnow
from webapp.services import audit

__all__ = [
    "KEY_PREFIX",
    "LAST_USED_RESOLUTION",
    "MAX_KEYS_PER_USER",
    "NAME_MAX_LENGTH",
    "PREFIX_LENGTH",
    "AuthenticatedKey",
    "NewApiKey",
    "admin_key_to_dict",
    "authenticate",
    "create_key",
    "hash_key",
    "key_to_dict",
    "list_all_keys",
    "list_keys",
    "looks_like_key",
    "revoke_any_key",
    "revoke_key",
]

KEY_PREFIX = "cbk_"
# secrets.token_urlsafe(30): 30 random bytes, 40 characters of base64url.
_RANDOM_BYTES = 30
_RANDOM_LENGTH = 40
PREFIX_LENGTH = 12
NAME_MAX_LENGTH = 100
MAX_KEYS_PER_USER = 50
"""Keys a user may hold at once (revoked ones do not count): far more than anyone needs, and a
bound on what a stolen session could create."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KEY_FORMAT = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{{_RANDOM_LENGTH}}}")
TARGET_TYPE = "api_key"


@dataclass(frozen=True)
class NewApiKey:
    """A key just created.

    Attributes:
        api_key: The stored row (hash and prefix only).
        key: The key itself: hand it to the user once, never store or log it.
    """

    api_key: ApiKey
    key: str


@dataclass(frozen=True)
class AuthenticatedKey:
    """A key that authenticated a request, and its owner.

    Attributes:
        api_key: The key's row.
        user: Its owner (active).
    """

    api_key: ApiKey
    user: User


def hash_key(key: str) -> str:
    """Return the SHA-256 of a key, in hex: what the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(value: str) -> bool:
    """Tell whether ``value`` has the form of a key (anything else is refused unlooked-up)."""
    return _KEY_FORMAT.fullmatch(value) is not None


def _generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def key_to_dict(api_key: ApiKey) -> dict[str, Any]:
    """Return a key as its owner sees it (never the key, never its hash).

    Args:
        api_key: The key's row.

    Returns:
        ``{"id", "name", "prefix", "created_at", "expires_at", "last_used_at"}``.
    """

    def instant(value: datetime | None) -> str | None:
        return None if value is None else isoformat_utc(value)

    return {
        "id": api_key.id,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "created_at": isoformat_utc(api_key.created_at),
        "expires_at": instant(api_key.expires_at),
        "last_used_at": instant(api_key.last_used_at),
    }


def admin_key_to_dict(api_key: ApiKey, owner_email: str) -> dict[str, Any]:
    """Return a key as admins see it: its owner's form, with the owner."""
    return {**key_to_dict(api_key), "user_id": api_key.user_id, "user_email": owner_email}


def _active_keys(user_id: int | None = None) -> Any:
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return query


def create_key(
    session: Session,
    *,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    source_ip: str | None = None,
    now: datetime | None = None,
) -> NewApiKey:
    """Create a key for ``user``, audited as ``api_key.create``; committed.

    Args:
        session: Database session; committed.
        user: The owner (the caller).
        name: What the key is for, 1 to ``NAME_MAX_LENGTH`` characters (trimmed).
        expires_at: When it stops working (aware, in the future); None: never.
        source_ip: The client's address, for the audit log.
        now: The current time (default: now).

    Returns:
        The stored key and the key itself (shown once).

    Raises:
        ValidationError: Naming ``expires_at`` if it is not in the future.
        ConflictError: If the user already holds ``MAX_KEYS_PER_USER`` keys.
    """
    now = now or utcnow()
    if expires_at is not None and expires_at <= now:
        raise ValidationError("expires_at must be in the future", field="expires_at")
    held = session.scalar(select(func.count()).select_from(_active_keys(user.id).subquery()))
    if (held or 0) >= MAX_KEYS_PER_USER:
        raise ConflictError(
            f"You already hold {MAX_KEYS_PER_USER} API keys; revoke one to create another."
        )
    key = _generate()
    api_key = ApiKey(
        user_id=user.id,
        name=name.strip(),
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_key(key),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(api_key)
    session.flush()
    audit.record(
        session,
        action="api_key.create",
        actor=user,
        target_type=TARGET_TYPE,
        target_id=api_key.id,
        source_ip=source_ip,
        details={
            "name": api_key.name,
            "prefix": api_key.prefix,
            "expires_at": None if expires_at is None else isoformat_utc(expires_at),
        },
    )
    session.commit()
    return NewApiKey(api_key=api_key, key=key)


def list_keys(session: Session, *, user_id: int) -> list[ApiKey]:
    """Return a user's keys that are not revoked (expired ones included), oldest first."""
    return list(session.scalars(_active_keys(user_id).order_by(ApiKey.id)))


def list_all_keys(session: Session, *, user_id: int | None = None) -> list[tuple[ApiKey, str]]:
    """Return every user's keys that are not revoked, with the owner's email, oldest first.

    Args:
        session: Database session.
        user_id: Only this user's keys.

    Returns:
        ``(key, owner email)`` pairs.
    """
    query = (
        _active_keys(user_id)
        .join(User, User.id == ApiKey.user_id)
        .add_columns(User.email)
        .order_by(ApiKey.id)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def _revoke(
    session: Session,
    api_key: ApiKey | None,
    *,
    actor: User,
    source_ip: str | None,
    now: datetime | None,
) -> ApiKey:
    if api_key is None:
        raise NotFoundError("API key not found.")
    api_key.revoked_at = now or utcnow()
    audit.record(
        session,
        action="api_key.revoke",
        actor=actor,
        target_type=TARGET_TYPE,
        target_id=api_key.id,
        source_ip=source_ip,
        details={"name": api_key.name, "prefix": api_key.prefix, "owner_id": api_key.user_id},
    )
    session.commit()
    return api_key


def revoke_key(
    session: Session,
    *,
    user: User,
    key_id: int,
    source_ip: str | None = None,
    now: datetime | None = None,
) -> ApiKey:
    """Revoke one of the user's own keys, audited as ``api_key.revoke``; committed.

    Args:
        session: Database session; committed.
        user: The owner (the caller).
        key_id: The key's id.
        source_ip: The client's address, for the audit log.
        now: The current time (default: now).

    Returns:
        The revoked key.

    Raises:
        NotFoundError: If the key is not the user's, or already revoked (indistinguishable
            from a key that never existed).
    """
    api_key = session.scalar(_active_keys(user.id).where(ApiKey.id == key_id).with_for_update())
    return _revoke(session, api_key, actor=user, source_ip=source_ip, now=now)


def revoke_any_key(
    session: Session, *, actor: audit.Actor, key_id: int, now: datetime | None = None
) -> ApiKey:
    """Revoke anyone's key, as an admin, audited as ``api_key.revoke``; committed.

    Args:
        session: Database session; committed.
        actor: The admin, and from where.
        key_id: The key's id.
        now: The current time (default: now).

    Returns:
        The revoked key.

    Raises:
        NotFoundError: If there is no such key that is not revoked.
    """
    api_key = session.scalar(_active_keys().where(ApiKey.id == key_id).with_for_update())
    return _revoke(session, api_key, actor=actor.user, source_ip=actor.source_ip, now=now)


def authenticate(
    session: Session, key: str, *, now: datetime | None = None
) -> AuthenticatedKey | None:
    """Return the key and its owner if ``key`` authenticates a request now.

    One statement finds the key with its owner, checking that it is not revoked, not expired
    and that the owner is active; a second one records the use, at most once a minute per key.
    The session is committed (a read alone ends its transaction too), so no connection stays
    checked out for the rest of a long streamed reply.

    Args:
        session: Database session; committed.
        key: What the client sent as its bearer token.
        now: The current time (default: now).

    Returns:
        The key and its owner, or None for anything that does not authenticate (malformed,
        unknown, revoked, expired, or belonging to a disabled account).
    """
    if not looks_like_key(key):
        return None
    now = now or utcnow()
    row = session.execute(
        _active_keys()
        .join(User, User.id == ApiKey.user_id)
        .add_columns(User)
        .where(
            ApiKey.key_hash == hash_key(key),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            User.is_active.is_(True),
        )
    ).one_or_none()
    if row is None:
        session.commit()
        return None
    api_key, user = row[0], row[1]
    stale = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is None or api_key.last_used_at <= stale:
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == api_key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        # As stored, without making the row dirty (the commit would write it again).
        set_committed_value(api_key, "last_used_at", now)
    session.commit()
    return AuthenticatedKey(api_key=api_key, user=user)
