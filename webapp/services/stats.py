"""Usage statistics for the admin console."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp.models import Conversation, Message, User

__all__ = ["collect_stats"]


def collect_stats(session: Session) -> dict[str, int]:
    """Count users, conversations and messages.

    Args:
        session: Database session.

    Returns:
        ``{"users": n, "conversations": n, "messages": n}``.
    """
    # One round trip: three scalar subqueries in a single SELECT.
    row = session.execute(
        select(
            select(func.count()).select_from(User).scalar_subquery(),
            select(func.count()).select_from(Conversation).scalar_subquery(),
            select(func.count()).select_from(Message).scalar_subquery(),
        )
    ).one()
    return {"users": row[0], "conversations": row[1], "messages": row[2]}
