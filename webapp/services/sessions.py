"""Sign-in sessions: token families, refresh-token rotation and the revocation denylist.

Every login starts a session with a random id that each token issued for it carries as the
``sid`` claim: the session is the token family. Redis holds the denylist:

- ``auth:revoked:session:<sid>``: the whole session is revoked (logout, or reuse of a rotated
  refresh token). Kept for the refresh-token lifetime, the longest any token of the session can
  still be valid: every refresh issues a refresh token of full lifetime, so none issued before
  the revocation outlives the key.
- ``auth:revoked:token:<jti>``: a refresh token that was exchanged at ``/refresh`` (rotated).
  Kept until that token would have expired anyway.

A rotated refresh token presented again means two parties hold it, the client and whoever copied
it, and there is no telling which one is presenting it now: the whole session is revoked, which
logs both out (reuse detection, as the OAuth 2.0 Security Best Current Practice describes).

Revocation of *every* session of a user (password change, deactivation) does not live here: it
is the user's ``token_version`` in the database, checked with the user row each request loads.

Plain Python: this module knows Redis, not Flask.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError

from webapp.errors import UnauthorizedError

__all__ = [
    "SESSION_CLAIM",
    "VERSION_CLAIM",
    "RefreshTokenReusedError",
    "SessionStore",
    "SessionStoreUnavailableError",
    "new_session_id",
]

SESSION_CLAIM = "sid"
"""Token claim holding the id of the sign-in session (token family)."""
VERSION_CLAIM = "ver"
"""Token claim holding the user's ``token_version`` when the token was issued."""

_REVOKED_SESSION_KEY = "auth:revoked:session:{}"
_SPENT_REFRESH_KEY = "auth:revoked:token:{}"
_ROTATED = b"rotated"
_REVOKED = b"revoked"
# After Redis failed, calls fail at once for this long instead of each waiting for a connect
# timeout: during an outage every authenticated request asks, and should not stall for seconds.
_RETRY_AFTER_FAILURE_SECONDS = 2.0

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class SessionStoreUnavailableError(Exception):
    """Raised when Redis, which holds the denylist, cannot be reached."""


class RefreshTokenReusedError(UnauthorizedError):
    """Raised when a refresh token is exchanged a second time; its session is now revoked."""

    def __init__(self) -> None:
        """Create the error with its fixed client message."""
        super().__init__(
            "This refresh token was already used; the session has been revoked. Log in again."
        )


def new_session_id() -> str:
    """Return a fresh, unguessable session id (128 random bits)."""
    return secrets.token_urlsafe(16)


class SessionStore:
    """The revocation denylist of sessions and rotated refresh tokens, kept in Redis.

    Thread-safe: the Redis client is, and the only other state is a timestamp.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        max_token_lifetime: timedelta,
        retry_after_failure: float = _RETRY_AFTER_FAILURE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the store.

        Args:
            redis: Client of the Redis holding the denylist.
            max_token_lifetime: Lifetime of the longest-lived token (the refresh token).
            retry_after_failure: Seconds to fail fast after Redis failed, before trying again.
            clock: Monotonic clock, replaceable in tests.
        """
        self._redis = redis
        self._session_ttl = max(1, int(max_token_lifetime.total_seconds()))
        self._retry_after_failure = retry_after_failure
        self._clock = clock
        self._unavailable_until = 0.0
        self.reuse_listeners: list[Callable[[Mapping[str, Any]], None]] = []
        """Called with the claims of a reused refresh token, after its session was revoked
        (the auth service records the event in the audit log)."""

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Tell whether a (validly signed, unexpired) token has been revoked.

        Presenting a refresh token that was already rotated revokes its whole session.

        Args:
            claims: The decoded token.

        Returns:
            True if its session or the token itself is on the denylist, or it belongs to no
            session (issued before sessions existed).

        Raises:
            SessionStoreUnavailableError: If Redis cannot be reached.
        """
        session_id, token_id = claims.get(SESSION_CLAIM), claims.get("jti")
        if not isinstance(session_id, str) or not isinstance(token_id, str):
            return True
        session_state, token_state = self._call(
            lambda: self._redis.mget(
                _REVOKED_SESSION_KEY.format(session_id), _SPENT_REFRESH_KEY.format(token_id)
            )
        )
        if session_state is not None:
            return True
        if token_state is None:
            return False
        if token_state == _ROTATED and claims.get("type") == "refresh":
            logger.warning("rotated refresh token presented again: revoking its session")
            self.revoke_session(session_id)
            self._reused(claims)
        return True

    def rotate(self, claims: Mapping[str, Any]) -> None:
        """Mark a refresh token as exchanged, so that it is refused from now on.

        Atomic: of two requests exchanging the same token at once, only one succeeds; the other
        counts as reuse.

        Args:
            claims: The decoded refresh token.

        Raises:
            RefreshTokenReusedError: If it had been exchanged before; its session is revoked.
            SessionStoreUnavailableError: If Redis cannot be reached.
        """
        key = _SPENT_REFRESH_KEY.format(claims["jti"])
        stored = self._call(
            lambda: self._redis.set(key, _ROTATED, nx=True, exat=int(claims["exp"]))
        )
        if not stored:
            logger.warning("refresh token exchanged twice: revoking its session")
            self.revoke_session(claims[SESSION_CLAIM])
            self._reused(claims)
            raise RefreshTokenReusedError

    def revoke_session(self, session_id: str) -> None:
        """Revoke every token of a session, issued so far or later from its refresh tokens.

        Args:
            session_id: The ``sid`` claim of the session's tokens.

        Raises:
            SessionStoreUnavailableError: If Redis cannot be reached.
        """
        key = _REVOKED_SESSION_KEY.format(session_id)
        self._call(lambda: self._redis.set(key, _REVOKED, ex=self._session_ttl))

    def _reused(self, claims: Mapping[str, Any]) -> None:
        for listener in self.reuse_listeners:
            try:
                listener(claims)
            except Exception:  # recording the event must not undo the revocation
                logger.exception("refresh-token reuse listener failed")

    def _call(self, operation: Callable[[], _T]) -> _T:
        if self._clock() < self._unavailable_until:
            raise SessionStoreUnavailableError("Redis failed moments ago; not retrying yet")
        try:
            return operation()
        except (RedisError, OSError) as exc:
            self._unavailable_until = self._clock() + self._retry_after_failure
            raise SessionStoreUnavailableError(str(exc)) from exc
