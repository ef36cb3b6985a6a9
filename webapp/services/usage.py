"""Usage figures for the admin console, computed from the stored messages.

A *message* is one a user sent; a *reply* is an assistant message (whatever its status). The
tokens are those recorded on the replies (``tokens_in``: the prompt, ``tokens_out``: the
answer). Days are UTC calendar days and ranges include both ends.

Costs are computed where the catalogue prices the model that wrote a reply (``messages.model``
is a stored model's name with a price): tokens_in x input price / 1M + tokens_out x output
price / 1M, at today's prices, as an exact decimal string; null where no reply was priced.
Replies of unpriced models (managed ones, stored ones without prices) add nothing.

The figures come from the ``messages`` table, so they describe the conversations that still
exist: deleting a conversation (or a user) removes its messages from them. What the daily
quota counted (``daily_usage``) is kept apart and survives conversation deletion; it is shown
as ``quota_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from webapp.errors import ValidationError
from webapp.models import ChatModel, Conversation, DailyUsage, Message, User
from webapp.services.catalogue_fields import format_decimal

__all__ = [
    "DEFAULT_RANGE_DAYS",
    "FIRST_DAY",
    "LAST_DAY",
    "MAX_RANGE_DAYS",
    "TOP_USERS_DEFAULT",
    "TOP_USERS_MAX",
    "DateRange",
    "parse_range",
    "usage_report",
]

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
TOP_USERS_DEFAULT = 10
# The days a range may name. The range's end is the midnight after its last day, and its
# default start lies DEFAULT_RANGE_DAYS before that day: near date.min or date.max either would
# overflow (a 500). No message predates this app, so the first day loses nothing.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(9999, 12, 30)
TOP_USERS_MAX = 100


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of UTC days.

    Attributes:
        since: The first day.
        until: The last day.
    """

    since: date
    until: date

    @property
    def start(self) -> datetime:
        """The first instant of the range."""
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the range."""
        following = self.until + timedelta(days=1)
        return datetime(following.year, following.month, following.day, tzinfo=UTC)


def _parse_day(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} must be a date as YYYY-MM-DD", field=name) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(
            f"{name} must be a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}",
            field=name,
        )
    return day


def parse_range(since: str | None, until: str | None, *, today: date | None = None) -> DateRange:
    """Parse and bound a range of days given as ``YYYY-MM-DD`` (both optional).

    Without ``until`` the range ends today (UTC); without ``since`` it covers
    ``DEFAULT_RANGE_DAYS`` days up to ``until``.

    Args:
        since: First day, or None.
        until: Last day, or None.
        today: Today's UTC date; defaults to now.

    Returns:
        The range.

    Raises:
        ValidationError: Naming ``since`` or ``until`` if a value is malformed or outside
            ``FIRST_DAY``..``LAST_DAY``, the range is reversed, or it is longer than
            ``MAX_RANGE_DAYS`` days.
    """
    today = today or datetime.now(UTC).date()
    last = _parse_day(until, "until") if until is not None else today
    first = (
        _parse_day(since, "since")
        if since is not None
        else last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    )
    if first > last:
        raise ValidationError("since must not be after until", field="since")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValidationError(
            f"the range from since to until must be at most {MAX_RANGE_DAYS} days", field="since"
        )
    return DateRange(first, last)


def _utc_day(column: Any) -> ColumnElement[date]:
    return cast(func.timezone("UTC", column), Date)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _cost(per_million: Decimal | None) -> str | None:
    # Summed in SQL per million tokens; scaled here, exactly (scaleb shifts the exponent).
    return None if per_million is None else format_decimal(Decimal(per_million).scaleb(-6))


def usage_report(
    session: Session,
    days: DateRange,
    *,
    user_id: int | None = None,
    top: int = TOP_USERS_DEFAULT,
) -> dict[str, Any]:
    """Compute the usage figures of a range of days, for everybody or one user.

    Args:
        session: Database session.
        days: The range.
        user_id: Only this user's messages; None for all users.
        top: How many users to list in ``top_users`` (most tokens first).

    Returns:
        ``since``, ``until``, ``user_id``, ``totals`` (messages, replies, failed, tokens,
        cache hit rate, fallback rate, latency p50/p95 in ms), ``days`` (one entry per day with
        any activity), ``models`` (per model that wrote replies, with ``cost``), ``top_users``
        (with ``cost``).
    """
    day = _utc_day(Message.created_at).label("day")
    scope = (
        select(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Message.created_at >= days.start, Message.created_at < days.end)
    )
    if user_id is not None:
        scope = scope.where(Conversation.user_id == user_id)
    scoped = scope.with_only_columns(
        Message.role,
        Message.status,
        Message.model,
        Message.tokens_in,
        Message.tokens_out,
        Message.latency_ms,
        Message.cached,
        Message.fallback,
        Conversation.user_id,
        day,
    ).subquery()
    is_user = scoped.c.role == "user"
    is_reply = scoped.c.role == "assistant"
    prices = (
        select(
            ChatModel.name,
            func.coalesce(ChatModel.price_input_per_mtok, 0).label("price_in"),
            func.coalesce(ChatModel.price_output_per_mtok, 0).label("price_out"),
        )
        .where(
            or_(
                ChatModel.price_input_per_mtok.is_not(None),
                ChatModel.price_output_per_mtok.is_not(None),
            )
        )
        .subquery()
    )
    with_prices = scoped.outerjoin(prices, prices.c.name == scoped.c.model)
    # Null (a sum of no rows) when no reply was priced.
    cost_per_million = (
        func.sum(
            func.coalesce(scoped.c.tokens_in, 0) * prices.c.price_in
            + func.coalesce(scoped.c.tokens_out, 0) * prices.c.price_out
        )
        .filter(is_reply, prices.c.name.is_not(None))
        .label("cost")
    )
    counts = (
        func.count().filter(is_user).label("messages"),
        func.count().filter(is_reply).label("replies"),
        func.coalesce(func.sum(scoped.c.tokens_in), 0).label("tokens_in"),
        func.coalesce(func.sum(scoped.c.tokens_out), 0).label("tokens_out"),
    )

    totals_row = session.execute(
        select(
            *counts,
            func.count().filter(is_reply, scoped.c.status == "failed"),
            func.count().filter(is_reply, scoped.c.cached.is_(True)),
            func.count().filter(is_reply, scoped.c.fallback.is_(True)),
            # Latency of replies a model produced: a cache hit's would flatter the figures.
            func.percentile_cont(0.5)
            .within_group(scoped.c.latency_ms)
            .filter(is_reply, scoped.c.cached.is_(False)),
            func.percentile_cont(0.95)
            .within_group(scoped.c.latency_ms)
            .filter(is_reply, scoped.c.cached.is_(False)),
        )
    ).one()
    replies = totals_row.replies
    totals = {
        "messages": totals_row.messages,
        "replies": replies,
        "failed_replies": totals_row[4],
        "tokens_in": int(totals_row.tokens_in),
        "tokens_out": int(totals_row.tokens_out),
        "cache_hit_rate": _rate(totals_row[5], replies),
        "fallback_rate": _rate(totals_row[6], replies),
        "latency_p50_ms": None if totals_row[7] is None else round(float(totals_row[7]), 1),
        "latency_p95_ms": None if totals_row[8] is None else round(float(totals_row[8]), 1),
    }

    quota_scope = select(
        DailyUsage.day, (DailyUsage.tokens_in + DailyUsage.tokens_out).label("tokens")
    ).where(DailyUsage.day >= days.since, DailyUsage.day <= days.until)
    if user_id is not None:
        quota_scope = quota_scope.where(DailyUsage.user_id == user_id)
    quota = quota_scope.subquery()
    quota_by_day = {
        row.day: int(row.tokens)
        for row in session.execute(
            select(quota.c.day, func.sum(quota.c.tokens).label("tokens")).group_by(quota.c.day)
        )
    }
    totals["quota_tokens"] = sum(quota_by_day.values())

    per_day = {
        row.day: {
            "day": row.day.isoformat(),
            "messages": row.messages,
            "replies": row.replies,
            "tokens_in": int(row.tokens_in),
            "tokens_out": int(row.tokens_out),
        }
        for row in session.execute(
            select(scoped.c.day, *counts).group_by(scoped.c.day).order_by(scoped.c.day)
        )
    }
    for quota_day in quota_by_day:
        per_day.setdefault(
            quota_day,
            {
                "day": quota_day.isoformat(),
                "messages": 0,
                "replies": 0,
                "tokens_in": 0,
                "tokens_out": 0,
            },
        )
    day_list = [
        {**per_day[key], "quota_tokens": quota_by_day.get(key, 0)} for key in sorted(per_day)
    ]

    models = [
        {
            "model": row.model,
            "replies": row.replies,
            "tokens_in": int(row.tokens_in),
            "tokens_out": int(row.tokens_out),
            "cached": row.cached,
            "fallback": row.fallback,
            "cost": _cost(row.cost),
        }
        for row in session.execute(
            select(
                scoped.c.model,
                func.count().label("replies"),
                func.coalesce(func.sum(scoped.c.tokens_in), 0).label("tokens_in"),
                func.coalesce(func.sum(scoped.c.tokens_out), 0).label("tokens_out"),
                func.count().filter(scoped.c.cached.is_(True)).label("cached"),
                func.count().filter(scoped.c.fallback.is_(True)).label("fallback"),
                cost_per_million,
            )
            .select_from(with_prices)
            .where(is_reply)
            .group_by(scoped.c.model)
            .order_by(func.count().desc(), scoped.c.model)
        )
    ]

    by_user = (
        select(scoped.c.user_id, *counts, cost_per_million)
        .select_from(with_prices)
        .group_by(scoped.c.user_id)
        .subquery()
    )
    top_users = [
        {
            "user_id": row.user_id,
            "email": row.email,
            "display_name": row.display_name,
            "messages": row.messages,
            "replies": row.replies,
            "tokens_in": int(row.tokens_in),
            "tokens_out": int(row.tokens_out),
            "cost": _cost(row.cost),
        }
        for row in session.execute(
            select(by_user, User.email, User.display_name)
            .join(User, User.id == by_user.c.user_id)
            .order_by(
                (by_user.c.tokens_in + by_user.c.tokens_out).desc(),
                by_user.c.messages.desc(),
                by_user.c.user_id,
            )
            .limit(top)
        )
    ]
    return {
        "since": days.since.isoformat(),
        "until": days.until.isoformat(),
        "user_id": user_id,
        "totals": totals,
        "days": day_list,
        "models": models,
        "top_users": top_users,
    }
