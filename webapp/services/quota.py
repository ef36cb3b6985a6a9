"""The per-user daily token quota (``LLM_DAILY_TOKEN_QUOTA``, or the user's own) and the usage
it counts.

Usage is kept per user and UTC day in ``daily_usage``, added in the transaction that stores each
reply: the prompt and completion tokens a model spent on it (as the model reported them, else
estimated; for a stopped or failed reply, an estimate of what was produced). Replies served from
the cache cost no model anything and are not counted. Kept apart from the messages, so deleting a
conversation or regenerating a reply does not give tokens back; counting is one primary-key
lookup per request.

The quota is checked before a model is called, not reserved: requests that start together may
each pass the check and end the day somewhat over the quota (by at most their replies). It
resets at 00:00 UTC.

A user's ``daily_token_quota`` overrides the global quota (`daily_quota`): null keeps the
global one, 0 means no quota for that user.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, ScalarSelect, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webapp.errors import ApiError
from webapp.models import DailyUsage, isoformat_utc, utcnow

__all__ = [
    "QuotaExceededError",
    "add_usage",
    "daily_quota",
    "enforce_quota",
    "next_reset",
    "tokens_used",
    "tokens_used_query",
    "utc_day",
]


class QuotaExceededError(ApiError):
    """Raised when a user's replies already used up today's token quota.

    Attributes:
        retry_after: Seconds until the quota resets.
        resets_at: When it resets, ISO 8601 in UTC.
        limit: The daily quota in tokens.
        used: Tokens used today.
    """

    status = 429
    code = "quota_exceeded"

    def __init__(self, *, limit: int, used: int, now: datetime) -> None:
        """Describe the exhausted quota and when it resets, as seen at ``now``."""
        reset = next_reset(now)
        self.retry_after = max(1, math.ceil((reset - now).total_seconds()))
        self.resets_at = isoformat_utc(reset)
        self.limit = limit
        self.used = used
        hours, minutes = divmod(math.ceil(self.retry_after / 60), 60)
        super().__init__(
            f"Daily token quota used up: {used} of {limit} tokens today. It resets at 00:00"
            f" UTC ({self.resets_at}), in {hours} h {minutes:02d} min."
        )

    def details(self) -> dict[str, int | str]:
        """Return the machine-readable members added to the error body."""
        return {
            "retry_after": self.retry_after,
            "resets_at": self.resets_at,
            "limit": self.limit,
            "used": self.used,
        }


def next_reset(now: datetime) -> datetime:
    """Return the next 00:00 UTC after ``now``.

    Args:
        now: A timezone-aware datetime.

    Returns:
        Midnight UTC that starts the next day.
    """
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)


def utc_day(now: datetime) -> date:
    """Return the UTC day of ``now``: the day its usage counts toward."""
    return now.astimezone(UTC).date()


def tokens_used_query(
    *, user_id: int | ColumnElement[int], day: date | ColumnElement[date]
) -> ScalarSelect[int]:
    """Return the tokens a user's replies cost on a UTC day, as a scalar subquery.

    For statements that read the usage along with other things (starting a reply); NULL when
    nothing was counted that day.

    Args:
        user_id: The user (or a bound parameter).
        day: The UTC day (`utc_day`, or a bound parameter).

    Returns:
        Prompt plus completion tokens counted that day (NULL: none).
    """
    return (
        select(DailyUsage.tokens_in + DailyUsage.tokens_out)
        .where(DailyUsage.user_id == user_id, DailyUsage.day == day)
        .scalar_subquery()
    )


def tokens_used(session: Session, *, user_id: int, now: datetime | None = None) -> int:
    """Return the tokens a user's replies cost models on the UTC day of ``now``.

    Args:
        session: Database session.
        user_id: The user.
        now: The time to look at (default: now).

    Returns:
        Prompt plus completion tokens counted today.
    """
    used = session.scalar(select(tokens_used_query(user_id=user_id, day=utc_day(now or utcnow()))))
    return int(used or 0)


def daily_quota(user_quota: int | None, default: int) -> int:
    """Return the daily token quota of a user (0: none).

    Args:
        user_quota: The user's own (``users.daily_token_quota``): None keeps ``default``,
            0 is no quota.
        default: The global quota (LLM_DAILY_TOKEN_QUOTA; 0: none).

    Returns:
        Tokens per UTC day the user may spend; 0 means no limit.
    """
    return default if user_quota is None else max(user_quota, 0)


def enforce_quota(used: int, *, quota: int, now: datetime) -> None:
    """Refuse a new reply when ``used`` tokens reach the daily quota.

    Args:
        used: Tokens the user's replies cost today (`tokens_used`).
        quota: Tokens per UTC day; 0 means no quota.
        now: The time of the request.

    Raises:
        QuotaExceededError: If ``quota`` is positive and ``used`` reaches it.
    """
    if 0 < quota <= used:
        raise QuotaExceededError(limit=quota, used=used, now=now)


def add_usage(
    session: Session,
    *,
    user_id: int,
    tokens_in: int,
    tokens_out: int,
    now: datetime | None = None,
) -> None:
    """Count a reply's tokens toward the user's usage of the day (not committed).

    Args:
        session: Database session; the caller commits (with the reply).
        user_id: The user the reply was for.
        tokens_in: Prompt tokens the model read.
        tokens_out: Tokens the model wrote.
        now: When the reply was made (default: now).
    """
    tokens_in, tokens_out = max(tokens_in, 0), max(tokens_out, 0)
    statement = insert(DailyUsage).values(
        user_id=user_id,
        day=utc_day(now or utcnow()),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        replies=1,
    )
    # One statement, safe against concurrent replies of the same user.
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyUsage.user_id, DailyUsage.day],
            set_={
                "tokens_in": DailyUsage.tokens_in + statement.excluded.tokens_in,
                "tokens_out": DailyUsage.tokens_out + statement.excluded.tokens_out,
                "replies": DailyUsage.replies + 1,
            },
        )
    )
