"""Starting, regenerating, stopping and finding replies: the database side of a reply.

Each function takes a database session (and the runner or Redis client it needs) from its
caller; none knows of Flask's request. Starting a reply commits the user's message and the
reply's ``streaming`` placeholder before any model is called.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from langchain_core.messages import BaseMessage
from redis import Redis, RedisError
from sqlalchemy import (
    ARRAY,
    Date,
    DateTime,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from webapp.bot import Bot, ModelSelection, ReplyResult
from webapp.errors import ConflictError, NotFoundError, ServiceUnavailableError
from webapp.models import Conversation, Message, utcnow
from webapp.replies.channel import ReplyChannel
from webapp.replies.failed import settle_as_failed
from webapp.replies.keys import MAX_REPLY_SECONDS, lease_key, stop_key
from webapp.replies.runner import ReplyJob, ReplyRunner
from webapp.services.chat import MESSAGE_MAX_LENGTH, history_messages, history_query
from webapp.services.quota import enforce_quota, tokens_used_query, utc_day
from webapp.validation import check_text

__all__ = [
    "ConversationModel",
    "ModelChooser",
    "StartedReply",
    "get_reply",
    "redis_required",
    "regenerate_reply",
    "start_reply",
    "stop_reply",
]

logger = logging.getLogger(__name__)

_CONVERSATIONS = cast(Table, Conversation.__table__)
_MESSAGES = cast(Table, Message.__table__)


@dataclass(frozen=True)
class StartedReply:
    """A reply whose generation has started.

    Attributes:
        message: The user message it answers (just stored, or the one regenerated for).
        reply: The assistant message, ``status="streaming"`` for now.
        future: Completes when the generation ends.
        events: The reply's events as this process generates them (read them with
            ``read_reply_events(..., channel=events)``: no Redis round trip per token).
    """

    message: Message
    reply: Message
    future: Future[ReplyResult | None]
    events: ReplyChannel


@dataclass(frozen=True)
class ConversationModel:
    """What a conversation's replies answer with, as stored with the conversation.

    Attributes:
        model_name: The catalogue model chosen; None: the user's default, else the system's.
        system_prompt: Sent before the history, or None.
        temperature: Overrides the model's default, or None.
    """

    model_name: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None


ModelChooser = Callable[[ConversationModel], ModelSelection | None]
"""Chooses the models of a reply from its conversation's settings (the routes make one per
request, around the catalogue snapshot and the user); None: the bot's own models."""


@dataclass(frozen=True)
class _Claim:
    """What the statement that claims a conversation for a new reply found and stored.

    Attributes:
        message_ids: The ids of the messages it inserted, in order (the reply last).
        used: The user's tokens today (0 when no quota is checked).
        streaming: Replies of the conversation still ``streaming`` before this one.
        history: What the new reply answers, oldest first: (id, role, content) of the
            messages stored before this statement.
        settings: What the conversation answers with.
    """

    message_ids: list[int]
    used: int
    streaming: list[int]
    history: list[tuple[int, str, str]]
    settings: ConversationModel


@functools.cache
def _claim_statement(*, guarded: bool) -> Select[Any]:
    """Return the one statement that starts a reply in the database (built once, bound later).

    It touches the conversation (``updated_at``, which also locks its row until the
    transaction ends, serialising replies within one conversation), inserts the new messages
    (arrays of role, content and status) in order, and reads what the checks and the
    generation need: the user's usage today, the replies still streaming, the history, and
    the conversation's model settings (``model_name``, ``system_prompt``, ``temperature``).
    These reads see the statement's snapshot, taken before the row lock was granted.
    ``guarded`` makes the statement touch (and insert) nothing when the conversation's row
    changed after that snapshot (``xmin``, the row version, differs): every transaction that
    starts or completes a reply updates that row, so a snapshot the guard accepts misses none
    of them. The caller then locks the row first and runs the statement again unguarded, with
    a fresh snapshot.

    Parameters: ``owner_id`` (the user), ``conversation_id``, ``now``, ``day`` (the UTC day
    of ``now``), ``roles``, ``contents``, ``statuses``.
    """
    conversation_id = bindparam("conversation_id", type_=Integer)
    # Not "user_id": an UPDATE takes parameters named after its table's columns as new values.
    user_id = bindparam("owner_id", type_=Integer)
    now = bindparam("now", type_=DateTime(timezone=True))
    conditions = [_CONVERSATIONS.c.id == conversation_id, _CONVERSATIONS.c.user_id == user_id]
    if guarded:
        snapshot = _CONVERSATIONS.alias("snapshot")
        seen = (
            select(literal_column("snapshot.xmin"))
            .select_from(snapshot)
            .where(snapshot.c.id == conversation_id)
            .scalar_subquery()
        )
        conditions.append(literal_column("conversations.xmin") == seen)
    touched = (
        update(_CONVERSATIONS)
        .where(*conditions)
        .values(updated_at=now)
        .returning(
            _CONVERSATIONS.c.id,
            _CONVERSATIONS.c.model_name,
            _CONVERSATIONS.c.system_prompt,
            _CONVERSATIONS.c.temperature,
        )
        .cte("touched")
    )
    # unnest(arrays) rather than VALUES: a statement of one shape, whatever the rows.
    rows = (
        func.unnest(
            bindparam("roles", type_=ARRAY(String)),
            bindparam("contents", type_=ARRAY(Text)),
            bindparam("statuses", type_=ARRAY(String)),
        )
        .table_valued("role", "content", "status", with_ordinality="n")
        .render_derived(name="new_messages")
    )
    inserted = (
        insert(_MESSAGES)
        .from_select(
            [
                "conversation_id",
                "role",
                "content",
                "status",
                "tokens_in",
                "tokens_out",
                "cached",
                "fallback",
                "created_at",
            ],
            select(
                touched.c.id,
                rows.c.role,
                rows.c.content,
                rows.c.status,
                literal(0),
                literal(0),
                literal(False),
                literal(False),
                now,
            )
            .select_from(touched.join(rows, true()))
            # The ids follow the rows' order: the user message before its reply.
            .order_by(rows.c.n),
            include_defaults=False,
        )
        .returning(_MESSAGES.c.id)
        .cte("inserted")
    )
    history = history_query(conversation_id).subquery("history")
    return select(
        select(func.array_agg(aggregate_order_by(inserted.c.id, inserted.c.id)))
        .scalar_subquery()
        .label("ids"),
        tokens_used_query(user_id=user_id, day=bindparam("day", type_=Date)).label("used"),
        select(func.array_agg(_MESSAGES.c.id))
        .where(_MESSAGES.c.conversation_id == conversation_id, _MESSAGES.c.status == "streaming")
        .scalar_subquery()
        .label("streaming"),
        select(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(history.c.id, history.c.role, history.c.content),
                    history.c.id,
                )
            )
        )
        .scalar_subquery()
        .label("history"),
        # What the reply answers with, as the locked row has it.
        *(
            select(touched.c[name]).scalar_subquery().label(name)
            for name in ("model_name", "system_prompt", "temperature")
        ),
    )


def _claim(
    session: Session,
    *,
    user_id: int,
    conversation_id: int,
    new_messages: Sequence[tuple[str, str, str]],
    now: datetime,
) -> _Claim:
    """Lock the user's conversation, store the new messages and read what the checks need.

    One round trip unless the conversation is missing or changed meanwhile (then three).

    Args:
        session: Database session (not committed).
        user_id: The user; must own the conversation.
        conversation_id: The conversation.
        new_messages: (role, content, status) of the messages to store, in order.
        now: Their ``created_at``, the conversation's ``updated_at``, the day of the usage.

    Raises:
        NotFoundError: If the conversation is not the user's.
    """
    parameters = {
        "owner_id": user_id,
        "conversation_id": conversation_id,
        "now": now,
        "day": utc_day(now),
        "roles": [role for role, _, _ in new_messages],
        "contents": [content for _, content, _ in new_messages],
        "statuses": [status for _, _, status in new_messages],
    }
    row = session.execute(_claim_statement(guarded=True), parameters).one()
    if row.ids is None:
        # Not the user's conversation, or another transaction changed it after the snapshot
        # (it may still hold the lock): wait for the lock, then claim with a fresh snapshot.
        locked = session.scalar(
            select(Conversation.id)
            .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
            .with_for_update()
        )
        if locked is None:
            raise NotFoundError("Conversation not found.")
        row = session.execute(_claim_statement(guarded=False), parameters).one()
    return _Claim(
        message_ids=list(row.ids),
        used=int(row.used or 0),
        streaming=list(row.streaming or ()),
        history=[(int(id_), str(role), str(content)) for id_, role, content in row.history or ()],
        settings=ConversationModel(row.model_name, row.system_prompt, row.temperature),
    )


def _new_message(
    message_id: int, conversation_id: int, role: str, content: str, status: str, now: datetime
) -> Message:
    # As the claim statement stored it: no read back needed.
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        role=role,
        content=content,
        model=None,
        tokens_in=0,
        tokens_out=0,
        status=status,
        latency_ms=None,
        cached=False,
        fallback=False,
        created_at=now,
    )


def _ensure_idle(session: Session, redis: Redis, streaming: Sequence[int]) -> None:
    """Refuse a reply while another one of the conversation lives; settle abandoned ones."""
    if not streaming:
        return
    pipe = redis.pipeline(transaction=False)
    for reply_id in streaming:
        pipe.exists(lease_key(reply_id))
    if any(pipe.execute()):
        raise ConflictError(
            "A reply is still being generated in this conversation; wait for it or stop it."
        )
    # Their processes died before finishing them.
    logger.warning("replies %s were abandoned by a dead process; marking them failed", streaming)
    session.execute(update(Message).where(Message.id.in_(streaming)).values(status="failed"))


def _begin(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    message: Message,
    reply: Message,
    history: list[BaseMessage],
    fresh: bool = False,
    selection: ModelSelection | None = None,
) -> StartedReply:
    slot = None
    try:
        slot = runner.reserve()
        # Before the commit: once the row is visible as streaming, its lease exists.
        runner.take_lease(reply.id)
        session.commit()
    except BaseException:
        session.rollback()
        if slot is not None:
            slot.release()
        raise
    job = ReplyJob(
        reply.id,
        reply.conversation_id,
        user_id,
        fresh,
        history=tuple(history),
        selection=selection,
    )
    try:
        generation = runner.submit(slot, bot, job)
    except BaseException:
        # The runner is shutting down: the reply will never come, say so.
        settle_as_failed(session, reply.id)
        raise
    return StartedReply(
        message=message, reply=reply, future=generation.future, events=generation.events
    )


@contextmanager
def redis_required() -> Iterator[None]:
    """Turn a Redis failure into a 503: no reply can be started without the stream store."""
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
    choose_models: ModelChooser | None = None,
) -> StartedReply:
    """Store a user's message and start generating the reply to it.

    The message and the reply's placeholder are committed before the model is called. In the
    usual case this costs one statement, one Redis command (the reply's lease) and the commit;
    the history read by that statement goes to the generation with the job.

    Args:
        session: Database session; committed.
        runner: The process's reply runner.
        bot: The bot to answer with.
        user_id: The user writing; must own the conversation.
        conversation_id: The conversation.
        content: The message text, 1 to ``MESSAGE_MAX_LENGTH`` characters.
        quota: The user's daily token quota (0: none).
        choose_models: Chooses the reply's models from the conversation's settings (read
            by the same statement); None answers with the bot's own models.

    Returns:
        The stored message, the reply being generated, its future and its events.

    Raises:
        ValidationError: If the content is blank or too long (400).
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated in the conversation (409).
        BusyError: If this process generates as many replies as it may (503).
        RedisError: If Redis is down (nothing is stored then).
    """
    check_text(content, "content", min_length=1, max_length=MESSAGE_MAX_LENGTH)
    now = utcnow()
    with redis_required():
        try:
            claim = _claim(
                session,
                user_id=user_id,
                conversation_id=conversation_id,
                new_messages=[("user", content, "complete"), ("assistant", "", "streaming")],
                now=now,
            )
            enforce_quota(claim.used, quota=quota, now=now)
            _ensure_idle(session, runner.redis, claim.streaming)
            selection = choose_models(claim.settings) if choose_models is not None else None
        except BaseException:
            session.rollback()
            raise
        message_id, reply_id = claim.message_ids
        history = [(role, text) for _, role, text in claim.history] + [("user", content)]
        return _begin(
            session,
            runner,
            bot,
            user_id=user_id,
            message=_new_message(message_id, conversation_id, "user", content, "complete", now),
            reply=_new_message(reply_id, conversation_id, "assistant", "", "streaming", now),
            history=history_messages(history),
            selection=selection,
        )


def regenerate_reply(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    conversation_id: int,
    quota: int,
    choose_models: ModelChooser | None = None,
) -> StartedReply:
    """Replace the conversation's last reply with a new one, to the same user message.

    The last reply (complete, stopped or failed) is deleted; its tokens still count toward the
    day's usage. The new reply is generated, never taken from the cache (it would be the same
    answer again), and replaces the cached one.

    Args: those of `start_reply` but ``content``: the last user message is answered again.

    Returns:
        The user message answered, the reply being generated, its future and its events.

    Raises:
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated, or there is no message to answer.
        BusyError: If this process generates as many replies as it may (503).
    """
    now = utcnow()
    with redis_required():
        try:
            claim = _claim(
                session,
                user_id=user_id,
                conversation_id=conversation_id,
                new_messages=[("assistant", "", "streaming")],
                now=now,
            )
            enforce_quota(claim.used, quota=quota, now=now)
            _ensure_idle(session, runner.redis, claim.streaming)
            (reply_id,) = claim.message_ids
            message = session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.role == "user")
                .order_by(Message.id.desc())
                .limit(1)
            )
            if message is None:
                raise ConflictError("There is no message to answer in this conversation yet.")
            selection = choose_models(claim.settings) if choose_models is not None else None
            session.execute(
                delete(Message).where(
                    Message.conversation_id == conversation_id,
                    Message.role == "assistant",
                    Message.id > message.id,
                    Message.id != reply_id,
                )
            )
        except BaseException:
            session.rollback()
            raise
        history = [(role, text) for id_, role, text in claim.history if id_ <= message.id]
        return _begin(
            session,
            runner,
            bot,
            user_id=user_id,
            message=message,
            reply=_new_message(reply_id, conversation_id, "assistant", "", "streaming", now),
            history=history_messages(history),
            fresh=True,
            selection=selection,
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


def stop_reply(session: Session, runner: ReplyRunner, *, user_id: int, reply_id: int) -> Message:
    """Ask the generation of one of the user's replies to stop.

    The generation, on whichever host it runs, stops after its next token (in this process)
    or its next write to the stream (elsewhere), closes the model's stream and stores what it
    had with status ``stopped``; the reply's event stream then ends with a ``stopped`` event.
    Stopping a finished reply changes nothing.

    Args:
        session: Database session.
        runner: The process's reply runner (its Redis client sets the stop flag).
        user_id: The user asking.
        reply_id: The assistant message's id.

    Returns:
        The reply as stored now (``streaming`` while the stop is on its way).

    Raises:
        NotFoundError: If there is no such reply, or it is in someone else's conversation.
    """
    reply = get_reply(session, user_id=user_id, reply_id=reply_id)
    if reply.status == "streaming":
        channel = runner.channels.get(reply_id)
        if channel is not None:
            channel.request_stop()
        with redis_required():
            runner.redis.set(stop_key(reply_id), "1", ex=MAX_REPLY_SECONDS)
    return reply
