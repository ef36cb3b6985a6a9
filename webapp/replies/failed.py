"""Settling a reply that will not complete: its row becomes ``failed``.

Used by the runner when a generation breaks down outside the model, by the service when a
reply cannot be started, and by the stream reader when the process generating it died.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.models import Message

__all__ = ["GENERATION_FAILED", "settle_as_failed"]

logger = logging.getLogger(__name__)

GENERATION_FAILED = "The model failed to produce a reply. Please try again."


def settle_as_failed(session: Session, reply_id: int) -> Message | None:
    """Mark a reply that is still ``streaming`` as failed (committed).

    Args:
        session: A database session; rolled back if the update fails.
        reply_id: The assistant message.

    Returns:
        The message as it now is; None if it is gone or the database could not be reached.
    """
    try:
        session.execute(
            update(Message)
            .where(Message.id == reply_id, Message.status == "streaming")
            .values(status="failed")
        )
        session.commit()
        return session.get(Message, reply_id, populate_existing=True)
    except Exception:
        logger.exception("could not mark reply %s as failed", reply_id)
        session.rollback()
        return None
