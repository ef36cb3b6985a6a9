"""Accounts: registration, authentication, profile and password changes, and admin control.

Password policy (``check_password_policy``), kept deliberately short; length does most of the
work, and Argon2id makes every guess expensive:

- 10 to 1024 characters;
- not all of one kind: at least two of lowercase letters, uppercase letters, digits and
  everything else (spaces, punctuation, other scripts), which refuses ``aaaaaaaaaa``,
  ``1234567890`` and ``qwertyuiop`` while accepting passphrases such as
  ``correct horse battery``;
- not the account's email address or the part of it before the ``@``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.emails import canonical_email, email_problem
from webapp.errors import (
    AccountDisabledError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
)
from webapp.models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, User, isoformat_utc
from webapp.services import audit, webhooks
from webapp.validation import check_text

__all__ = [
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "AdminProvisioning",
    "authenticate",
    "change_password",
    "check_password_policy",
    "ensure_admin",
    "get_user",
    "get_user_by_email",
    "hash_password",
    "lock_other_active_admins",
    "normalize_email",
    "register_user",
    "require_user",
    "set_password",
    "set_user_active",
    "update_profile",
    "user_to_dict",
]

PASSWORD_MIN_LENGTH = 10
# Generous, but bounded: nobody types more, and hashing unbounded input is a cheap DoS vector.
PASSWORD_MAX_LENGTH = 1024
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")
_INVALID_CREDENTIALS = "Invalid email or password."
_EMAIL_UNIQUE_CONSTRAINT = "uq_users_email"
# Login input longer than this is refused as malformed; up to it, a mismatch is a plain 401.
LOGIN_INPUT_MAX_LENGTH = 4096

# Argon2id with the library's defaults (RFC 9106 low-memory profile).
_hasher = PasswordHasher()


@dataclass
class AdminProvisioning:
    """What :func:`ensure_admin` did to the account.

    Attributes:
        user: The admin account.
        created: The account did not exist and was created.
        promoted: An existing user was given the admin role.
        password_changed: The password of an existing account was reset.
    """

    user: User
    created: bool = False
    promoted: bool = False
    password_changed: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything was written to the database."""
        return self.created or self.promoted or self.password_changed


def normalize_email(email: str) -> str:
    """Return the canonical form of an email address (:mod:`webapp.emails`), checked.

    Two addresses with the same canonical form are the same account: registering a look-alike
    (full-width letters, other case) of an existing address is a conflict.

    Args:
        email: The address as typed.

    Returns:
        The normalized address.

    Raises:
        ValidationError: If it does not look like an email address.
    """
    check_text(email, "email", min_length=1, max_length=LOGIN_INPUT_MAX_LENGTH)
    value = check_text(canonical_email(email), "email", min_length=1, max_length=EMAIL_MAX_LENGTH)
    if not _EMAIL_RE.fullmatch(value):
        raise ValidationError("email is not a valid email address", field="email")
    problem = email_problem(value)
    if problem is not None:
        raise ValidationError(problem, field="email")
    return value


def _character_class(char: str) -> str:
    if char.isdigit():
        return "digit"
    if char.islower():
        return "lower"
    if char.isupper():
        return "upper"
    return "other"


def check_password_policy(password: str, *, email: str, field: str = "password") -> str:
    """Check a new password against the policy in this module's docstring.

    Args:
        password: The proposed password.
        email: The account's normalized email address.
        field: Name of the input field, for the error.

    Returns:
        The password, unchanged.

    Raises:
        ValidationError: Naming ``field`` and the rule the password breaks.
    """
    check_text(password, field, min_length=0, max_length=PASSWORD_MAX_LENGTH)
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValidationError(
            f"{field} must be at least {PASSWORD_MIN_LENGTH} characters", field=field
        )
    if len({_character_class(char) for char in password}) < 2:
        raise ValidationError(
            f"{field} must mix at least two kinds of characters: lowercase, uppercase, digits,"
            " others (spaces, punctuation)",
            field=field,
        )
    if password.strip().lower() in (email, email.split("@", 1)[0]):
        raise ValidationError(f"{field} must not be the email address", field=field)
    return password


def _display_name(display_name: str | None, email: str) -> str:
    if display_name is None:
        # Default to the local part so the UI has something friendlier than the full address.
        return email.split("@", 1)[0][:DISPLAY_NAME_MAX_LENGTH]
    check_text(display_name, "display_name", min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH)
    return display_name.strip()


def _new_user(email: str, password: str, display_name: str | None, *, role: str) -> User:
    # The values are checked first: nothing is built from a password that breaks the policy.
    check_password_policy(password, email=email)
    return User(
        email=email,
        password_hash=hash_password(password),
        display_name=_display_name(display_name, email),
        role=role,
    )


def hash_password(password: str) -> str:
    """Hash a password with Argon2id.

    Args:
        password: The plain-text password.

    Returns:
        The encoded hash, including its parameters and salt.
    """
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password, only used to equalise timing")


def user_to_dict(user: User) -> dict[str, Any]:
    """Return the public JSON representation of a user (never the password hash).

    Args:
        user: The user to serialise.

    Returns:
        ``{"id", "email", "display_name", "role", "is_active", "created_at"}``.
    """
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": isoformat_utc(user.created_at),
    }


def register_user(
    session: Session, *, email: str, password: str, display_name: str | None = None
) -> User:
    """Create an ordinary user account.

    Registration can never grant a role: every account created here is a ``user``.

    Args:
        session: Database session; committed on success.
        email: Email address; stored normalized.
        password: Plain-text password, at least ``PASSWORD_MIN_LENGTH`` characters.
        display_name: Name shown in the UI; defaults to the email's local part.

    Returns:
        The new user.

    Raises:
        ValidationError: If a value breaks the rules, naming the field.
        ConflictError: If the email is already registered.
    """
    user = _new_user(normalize_email(email), password, display_name, role="user")
    session.add(user)
    try:
        # Flushed first for the id: the webhook event is committed with the account itself.
        session.flush()
        webhooks.emit(session, "user.registered", {"user": user_to_dict(user)})
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        # The unique constraint is the arbiter: checking first would race with a parallel
        # registration of the same address. Any other violation is a bug, not a conflict.
        if _violated_constraint(exc) != _EMAIL_UNIQUE_CONSTRAINT:
            raise
        raise ConflictError("email is already registered", field="email") from None
    return user


def _violated_constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def authenticate(session: Session, *, email: str, password: str) -> User:
    """Return the active user with these credentials.

    Unknown email and wrong password give the same error, and an unknown email still costs one
    hash verification, so responses do not reveal which accounts exist. Only the right password
    of a disabled account learns that it is disabled.

    Args:
        session: Database session; committed if the stored hash is upgraded.
        email: Email address as typed.
        password: Plain-text password.

    Returns:
        The authenticated user.

    Raises:
        ValidationError: If a value is not storable text or absurdly long.
        UnauthorizedError: If the credentials are wrong.
        AccountDisabledError: If they are right but an admin disabled the account.
    """
    # Text that cannot be stored (NUL, lone surrogates) cannot match an account either; refuse
    # it as bad input instead of letting the database or the hasher choke on it.
    check_text(email, "email", min_length=0, max_length=LOGIN_INPUT_MAX_LENGTH)
    check_text(password, "password", min_length=0, max_length=LOGIN_INPUT_MAX_LENGTH)
    user = get_user_by_email(session, email)
    if user is None or len(password) > PASSWORD_MAX_LENGTH:
        _verify(_dummy_hash(), password[:PASSWORD_MAX_LENGTH])
        raise UnauthorizedError(_INVALID_CREDENTIALS)
    if not _verify(user.password_hash, password):
        raise UnauthorizedError(_INVALID_CREDENTIALS)
    if not user.is_active:
        raise AccountDisabledError("This account is disabled; contact an administrator.")
    if _hasher.check_needs_rehash(user.password_hash):
        # Parameters were raised since this hash was made; upgrade it while we know the password.
        user.password_hash = hash_password(password)
        session.commit()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def get_user(session: Session, user_id: int) -> User | None:
    """Return the user with this id, or None.

    Args:
        session: Database session.
        user_id: The user's id.

    Returns:
        The user, or None if there is none.
    """
    return session.get(User, user_id)


def require_user(session: Session, user_id: int) -> User:
    """Return the user with this id.

    Args:
        session: Database session.
        user_id: The user's id.

    Returns:
        The user.

    Raises:
        NotFoundError: If there is none.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return user


def get_user_by_email(session: Session, email: str) -> User | None:
    """Return the user with this email address (compared in canonical form), or None.

    Args:
        session: Database session.
        email: The address as typed.

    Returns:
        The user, or None if there is none.
    """
    return session.scalar(select(User).where(User.email == canonical_email(email)))


def ensure_admin(
    session: Session,
    *,
    email: str,
    password: str | None,
    display_name: str | None = None,
    reset_password: bool = False,
) -> AdminProvisioning:
    """Create an admin account or promote an existing user; safe to run repeatedly.

    An existing user keeps their password unless ``reset_password`` is set, so re-running the
    provisioning step of a deploy never locks anybody out. A reset revokes the account's tokens.

    Args:
        session: Database session; committed when something changed.
        email: The admin's email address.
        password: Password for a new account (or the reset); may be None otherwise.
        display_name: Display name for a new account.
        reset_password: Also set ``password`` on an existing account.

    Returns:
        The user and what was done to it.

    Raises:
        ValidationError: If a value breaks the rules, or a needed password is missing.
    """
    email = normalize_email(email)
    user = get_user_by_email(session, email)
    if user is None:
        if password is None:
            raise ValidationError("password is required to create an account", field="password")
        user = _new_user(email, password, display_name, role="admin")
        session.add(user)
        session.commit()
        return AdminProvisioning(user, created=True)

    result = AdminProvisioning(user)
    if reset_password:
        if password is None:
            raise ValidationError("password is required to reset it", field="password")
        check_password_policy(password, email=email)
        if not _verify(user.password_hash, password):
            _set_password(user, password)
            result.password_changed = True
    if user.role != "admin":
        user.role = "admin"
        result.promoted = True
    if result.changed:
        session.commit()
    return result


def _revoke_all_tokens(user: User) -> None:
    # Every token issued before carries a lower version and stops working. Incremented in SQL,
    # so that two changes at once cannot both end on the same version; the attribute is
    # reloaded when next read.
    user.token_version = User.token_version + 1


def _set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    _revoke_all_tokens(user)


def set_password(user: User, password: str) -> None:
    """Set a new password (already checked against the policy) and revoke every token.

    Args:
        user: The user, loaded in the caller's session; the caller commits.
        password: The new plain-text password.
    """
    _set_password(user, password)


def revoke_all_sessions(session: Session, user: User) -> User:
    """End every session of ``user`` on every device: every token they hold stops working.

    Args:
        session: Database session; committed.
        user: The user, loaded in ``session``.

    Returns:
        The user, with a new ``token_version``.
    """
    _revoke_all_tokens(user)
    session.commit()
    return user


def lock_other_active_admins(session: Session, user: User) -> list[int]:
    """Lock every active admin row and return the ids of those other than ``user``.

    Always in id order: two admins demoting, disabling or deleting each other at once
    serialise here (without deadlock), and the second sees the first's change instead of both
    succeeding. An empty result means ``user`` is the last active admin.

    Args:
        session: Database session, in the transaction that will change ``user``.
        user: The admin about to lose the role or access.

    Returns:
        Ids of the other active admins.
    """
    admins = session.scalars(
        select(User.id)
        .where(User.role == "admin", User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    return [admin_id for admin_id in admins if admin_id != user.id]


def update_profile(session: Session, user: User, *, display_name: str | None) -> User:
    """Change the profile fields a user may edit themselves.

    Args:
        session: Database session; committed.
        user: The user, loaded in ``session``.
        display_name: The new display name, or None to leave it.

    Returns:
        The updated user.

    Raises:
        ValidationError: If a value breaks the rules, naming the field.
    """
    if display_name is not None:
        user.display_name = _display_name(display_name, user.email)
    session.commit()
    return user


def change_password(
    session: Session, user: User, *, current_password: str, new_password: str
) -> User:
    """Set a new password after checking the current one; revoke every token of the user.

    The caller issues fresh tokens for the session that asked, if it is to continue.

    Args:
        session: Database session; committed.
        user: The user, loaded in ``session``.
        current_password: The password the user has now.
        new_password: The password to set; must meet the policy and differ from the current.

    Returns:
        The updated user, with a new ``token_version``.

    Raises:
        ValidationError: If a value is malformed or the new password breaks the policy.
        ForbiddenError: If ``current_password`` is wrong (field ``current_password``).
    """
    check_text(
        current_password, "current_password", min_length=0, max_length=LOGIN_INPUT_MAX_LENGTH
    )
    if len(current_password) > PASSWORD_MAX_LENGTH or not _verify(
        user.password_hash, current_password
    ):
        raise ForbiddenError("current_password is incorrect", field="current_password")
    check_password_policy(new_password, email=user.email, field="new_password")
    if new_password == current_password:
        raise ValidationError(
            "new_password must differ from the current password", field="new_password"
        )
    _set_password(user, new_password)
    session.commit()
    return user


def set_user_active(
    session: Session,
    *,
    user_id: int,
    active: bool,
    actor: audit.Actor | None = None,
) -> User:
    """Enable or disable an account; disabling revokes every token it holds.

    The last active admin cannot be disabled, so the system never loses its last way in
    through the API (the ``create-admin`` command remains for operators).

    Args:
        session: Database session; committed.
        user_id: The account's id.
        active: True to enable, False to disable.
        actor: The admin doing it, and from where; when given, an audit event is recorded in
            the same transaction (``admin.user_disabled`` / ``admin.user_enabled``).

    Returns:
        The updated user.

    Raises:
        NotFoundError: If there is no such user.
        ConflictError: If this would disable the last active admin.
    """
    user = require_user(session, user_id)
    if not active and user.is_active:
        if user.is_admin and not lock_other_active_admins(session, user):
            session.rollback()
            raise ConflictError("the last active admin cannot be disabled")
        user.is_active = False
        _revoke_all_tokens(user)
        webhooks.emit(session, "user.disabled", {"user": user_to_dict(user)})
    elif active:
        # Re-enabling keeps the raised version: tokens from before the deactivation stay dead.
        user.is_active = True
    if actor is not None:
        action = "admin.user_enabled" if active else "admin.user_disabled"
        audit.record_account_change(session, action, actor=actor, user=user)
    session.commit()
    return user
