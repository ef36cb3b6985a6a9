"""Starting, regenerating, stopping and finding replies: the database side of a reply.

Each function takes a database session (and the runner or Redis client it needs) from its
caller; none knows of Flask's request. Starting a reply commits the user's message and the
reply's ``streaming`` placeholder before any model is called.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis, RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from webapp.bot import Bot, ReplyResult
from webapp.errors import ConflictError, NotFoundError, ServiceUnavailableError
from webapp.models import Conversation, Message, utcnow
from webapp.replies.failed import settle_as_failed
from webapp.replies.keys import MAX_REPLY_SECONDS, lease_key, stop_key
from webapp.replies.runner import ReplyJob, ReplyRunner, ReplySlot
from webapp.services.chat import MESSAGE_MAX_LENGTH
from webapp.services.quota import check_quota
from webapp.validation import check_text

__all__ = ["StartedReply", "get_reply", "regenerate_reply", "start_reply", "stop_reply"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartedReply:
    """A reply whose generation has started.

    Attributes:
        message: The user message it answers (just stored, or the one regenerated for).
        reply: The assistant message, ``status="streaming"`` for now.
        future: Completes when the generation ends.
    """

    message: Message
    reply: Message
    future: Future[ReplyResult | None]


def _lock_conversation(session: Session, *, user_id: int, conversation_id: int) -> Conversation:
    # FOR UPDATE serialises replies within one conversation: two requests cannot both find it
    # idle and start two replies.
    conversation = session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        .with_for_update()
    )
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


def _ensure_idle(session: Session, redis: Redis, conversation_id: int) -> None:
    streaming = session.scalars(
        select(Message.id).where(
            Message.conversation_id == conversation_id, Message.status == "streaming"
        )
    ).all()
    for reply_id in streaming:
        if redis.exists(lease_key(reply_id)):
            raise ConflictError(
                "A reply is still being generated in this conversation; wait for it or stop it."
            )
        # Its process died before finishing it.
        logger.warning("reply %s was abandoned by a dead process; marking it failed", reply_id)
        session.execute(update(Message).where(Message.id == reply_id).values(status="failed"))


def _begin(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    conversation: Conversation,
    user_id: int,
    message: Message,
    fresh: bool = False,
) -> StartedReply:
    slot: ReplySlot | None = None
    try:
        slot = runner.reserve()
        reply = Message(
            conversation_id=conversation.id, role="assistant", content="", status="streaming"
        )
        session.add(reply)
        conversation.updated_at = utcnow()
        session.flush()
        # Before the commit: once the row is visible as streaming, its lease exists.
        runner.take_lease(reply.id)
        session.commit()
    except BaseException:
        session.rollback()
        if slot is not None:
            slot.release()
        raise
    try:
        future = runner.submit(slot, bot, ReplyJob(reply.id, conversation.id, user_id, fresh))
    except BaseException:
        # The runner is shutting down: the reply will never come, say so.
        settle_as_failed(session, reply.id)
        raise
    return StartedReply(message=message, reply=reply, future=future)


@contextmanager
def _redis_required() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        logger.warning("Redis is unavailable: refusing to start a reply", exc_info=True)
        raise ServiceUnavailableError(
            "Replies cannot be generated right now (the stream store is unavailable); retry"
            " shortly."
        ) from exc


def start_reply(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    conversation_id: int,
    content: str,
    quota: int,
) -> StartedReply:
    """Store a user's message and start generating the reply to it.

    The message and the reply's placeholder are committed before the model is called.

    Args:
        session: Database session; committed.
        runner: The process's reply runner.
        bot: The bot to answer with.
        user_id: The user writing; must own the conversation.
        conversation_id: The conversation.
        content: The message text, 1 to ``MESSAGE_MAX_LENGTH`` characters.
        quota: The daily token quota (0: none).

    Returns:
        The stored message, the reply being generated, and its future.

    Raises:
        ValidationError: If the content is blank or too long (400).
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated in the conversation (409).
        BusyError: If this process generates as many replies as it may (503).
        RedisError: If Redis is down (nothing is stored then).
    """
    check_text(content, "content", min_length=1, max_length=MESSAGE_MAX_LENGTH)
    conversation = _lock_conversation(session, user_id=user_id, conversation_id=conversation_id)
    with _redis_required():
        try:
            check_quota(session, user_id=user_id, quota=quota)
            _ensure_idle(session, runner.redis, conversation.id)
            message = Message(conversation_id=conversation.id, role="user", content=content)
            session.add(message)
        except BaseException:
            session.rollback()
            raise
        return _begin(
            session, runner, bot, conversation=conversation, user_id=user_id, message=message
        )


def regenerate_reply(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    conversation_id: int,
    quota: int,
) -> StartedReply:
    """Replace the conversation's last reply with a new one, to the same user message.

    The last reply (complete, stopped or failed) is deleted; its tokens still count toward the
    day's usage. The new reply is generated, never taken from the cache (it would be the same
    answer again), and replaces the cached one.

    Args: those of `start_reply` but ``content``: the last user message is answered again.

    Returns:
        The user message answered, the reply being generated, and its future.

    Raises:
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated, or there is no message to answer.
        BusyError: If this process generates as many replies as it may (503).
    """
    conversation = _lock_conversation(session, user_id=user_id, conversation_id=conversation_id)
    with _redis_required():
        try:
            check_quota(session, user_id=user_id, quota=quota)
            _ensure_idle(session, runner.redis, conversation.id)
            message = session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation.id, Message.role == "user")
                .order_by(Message.id.desc())
                .limit(1)
            )
            if message is None:
                raise ConflictError("There is no message to answer in this conversation yet.")
            session.execute(
                delete(Message).where(
                    Message.conversation_id == conversation.id,
                    Message.role == "assistant",
                    Message.id > message.id,
                )
            )
        except BaseException:
            session.rollback()
            raise
        return _begin(
            session,
            runner,
            bot,
            conversation=conversation,
            user_id=user_id,
            message=message,
            fresh=True,
        )


def get_reply(session: Session, *, user_id: int, reply_id: int) -> Message:
    """Return one of the user's replies (an assistant message), as stored now.

    Args:
        session: Database session.
        user_id: The user asking.
        reply_id: The assistant message's id.

    Returns:
        The message, freshly read.

    Raises:
        NotFoundError: If there is no such reply, or it is in someone else's conversation.
    """
    reply = session.scalar(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.id == reply_id,
            Message.role == "assistant",
            Conversation.user_id == user_id,
        )
        .execution_options(populate_existing=True)
    )
    if reply is None:
        raise NotFoundError("Reply not found.")
    return reply


def stop_reply(session: Session, redis: Redis, *, user_id: int, reply_id: int) -> Message:
    """Ask the generation of one of the user's replies to stop.

    The generation, on whichever host it runs, stops after its next token, closes the model's
    stream and stores what it had with status ``stopped``; the reply's event stream then ends
    with a ``stopped`` event. Stopping a finished reply changes nothing.

    Args:
        session: Database session.
        redis: The Redis client.
        user_id: The user asking.
        reply_id: The assistant message's id.

    Returns:
        The reply as stored now (``streaming`` while the stop is on its way).

    Raises:
        NotFoundError: If there is no such reply, or it is in someone else's conversation.
    """
    reply = get_reply(session, user_id=user_id, reply_id=reply_id)
    if reply.status == "streaming":
        with _redis_required():
            redis.set(stop_key(reply_id), "1", ex=MAX_REPLY_SECONDS)
    return reply
