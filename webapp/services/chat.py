"""Messages of conversations: their JSON form, and the bot's view of them.

:class:`SqlHistoryStore` implements the bot's ``HistoryStore`` protocol over the app's own
tables, which stay the one source of truth for conversation history. Generating replies is in
:mod:`webapp.replies`; conversations themselves (listing, renaming, titles, export)
are in :mod:`webapp.services.conversations`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webapp.bot import ReplyRecord
from webapp.models import (
    MESSAGE_MAX_LENGTH,
    Conversation,
    Message,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from webapp.services.conversations import (
    derive_title,
    ensure_title,
    get_conversation,
    message_to_dict,
)
from webapp.services.quota import add_usage
from webapp.services.webhooks import emit, subscribed_webhooks
from webapp.validation import check_text

__all__ = [
    "HISTORY_LOAD_LIMIT",
    "HISTORY_STATUSES",
    "MESSAGE_MAX_LENGTH",
    "SqlHistoryStore",
    "add_user_message",
    "history_messages",
    "history_query",
    "message_to_dict",
]

# The bot trims history to a token budget far below this; the cap only bounds what one request
# reads from the database for a very long conversation.
HISTORY_LOAD_LIMIT = 200
# What the model sees of a conversation: user messages, and replies the user saw in full or
# stopped. Failed replies and the one being generated are left out.
HISTORY_STATUSES = ("complete", "stopped")
# The event a completed reply sends to the webhooks subscribed to it.
COMPLETED_EVENT = "message.completed"

_CONVERSATIONS = cast(Table, Conversation.__table__)
_MESSAGES = cast(Table, Message.__table__)
_WEBHOOKS = cast(Table, Webhook.__table__)
_DELIVERIES = cast(Table, WebhookDelivery.__table__)


def history_query(conversation_id: int | ColumnElement[int]) -> Select[int, str, str]:
    """Return the query of what the model sees of a conversation: (id, role, content), newest first.

    The one definition of the history a reply answers: the runner's store runs it, and starting
    a reply reads it in the transaction that locks the conversation (handing it to the runner).

    Args:
        conversation_id: The conversation (or a bound parameter).

    Returns:
        Up to ``HISTORY_LOAD_LIMIT`` rows of messages with a status in ``HISTORY_STATUSES``.
    """
    return (
        select(Message.id, Message.role, Message.content)
        .where(
            Message.conversation_id == conversation_id,
            Message.status.in_(HISTORY_STATUSES),
        )
        .order_by(Message.id.desc())
        .limit(HISTORY_LOAD_LIMIT)
    )


def history_messages(rows: Iterable[tuple[str, str]]) -> list[BaseMessage]:
    """Return (role, content) pairs, oldest first, as the LangChain messages the bot reads."""
    return [
        AIMessage(content=content) if role == "assistant" else HumanMessage(content=content)
        for role, content in rows
    ]


def add_user_message(
    session: Session, *, user_id: int, conversation_id: int, content: str
) -> Message:
    """Store a user's message, committed before any model runs.

    Committing first means the message survives whatever happens during generation.

    Args:
        session: Database session; committed.
        user_id: The user writing; must own the conversation.
        conversation_id: The conversation to add to.
        content: The message text, 1 to ``MESSAGE_MAX_LENGTH`` characters.

    Returns:
        The stored message.

    Raises:
        ValidationError: If the content is blank or too long.
        NotFoundError: If the conversation is not the user's.
    """
    check_text(content, "content", min_length=1, max_length=MESSAGE_MAX_LENGTH)
    conversation = get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    message = Message(conversation_id=conversation.id, role="user", content=content)
    session.add(message)
    conversation.updated_at = utcnow()
    session.commit()
    return message


def _isoformat_utc(value: ColumnElement[Any]) -> ColumnElement[str]:
    """Return SQL formatting a timestamp as :func:`webapp.models.isoformat_utc` does in Python.

    ISO 8601 in UTC; the microseconds are left out when they are zero, as ``isoformat`` does.
    """
    utc = func.timezone("UTC", value)
    micro = func.to_char(utc, "US", type_=Text)
    return func.concat(
        func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS', type_=Text),
        case((micro == "000000", ""), else_=func.concat(".", micro)),
        "+00:00",
        type_=Text,
    )


def _json_object(**members: ColumnElement[Any]) -> ColumnElement[Any]:
    # The keys inline: jsonb_build_object cannot tell the type of a bound parameter.
    return func.jsonb_build_object(
        *(part for key, value in members.items() for part in (literal_column(f"'{key}'"), value))
    )


@functools.cache
def _store_reply_statement() -> Select[Any]:
    """Return the one statement that stores a finished reply (built once, bound later).

    It updates the reply's message (returning it), marks its conversation active and names it,
    while untitled, with ``new_title`` if ``first_question`` is still its first user message
    (so a title derived from a partial history is never used), and inserts the
    ``message.completed`` deliveries when the reply is complete and ``queue_completed``. With
    the conversation deleted it changes nothing and returns no row. The reply's own columns
    are returned, with ``untitled`` (the conversation still has no title) and ``queued`` (how
    many deliveries were inserted).

    Parameters: ``reply_id``, ``in_conversation``, ``now``, ``reply_content``, ``reply_model``,
    ``reply_status``, ``reply_tokens_in``, ``reply_tokens_out``, ``reply_latency_ms``,
    ``reply_cached``, ``reply_fallback``, ``first_question``, ``new_title``, ``owner_id``,
    ``queue_completed``. Parameters are not named after the columns: an UPDATE takes those as
    new values.
    """
    conversation_id = bindparam("in_conversation", type_=Integer)
    stored = (
        update(_MESSAGES)
        .where(
            _MESSAGES.c.id == bindparam("reply_id", type_=BigInteger),
            _MESSAGES.c.conversation_id == conversation_id,
        )
        .values(
            content=bindparam("reply_content", type_=Text),
            model=bindparam("reply_model", type_=String),
            status=bindparam("reply_status", type_=String),
            tokens_in=bindparam("reply_tokens_in", type_=Integer),
            tokens_out=bindparam("reply_tokens_out", type_=Integer),
            latency_ms=bindparam("reply_latency_ms", type_=Integer),
            cached=bindparam("reply_cached", type_=Boolean),
            fallback=bindparam("reply_fallback", type_=Boolean),
        )
        .returning(*_MESSAGES.c)
        .cte("stored")
    )
    first_question = (
        select(_MESSAGES.c.content)
        .where(_MESSAGES.c.conversation_id == conversation_id, _MESSAGES.c.role == "user")
        .order_by(_MESSAGES.c.id)
        .limit(1)
        .scalar_subquery()
    )
    touched = (
        update(_CONVERSATIONS)
        .where(_CONVERSATIONS.c.id.in_(select(stored.c.conversation_id)))
        .values(
            updated_at=bindparam("now", type_=DateTime(timezone=True)),
            # Only the first exchange names a conversation, and never over a title it has.
            title=func.coalesce(
                _CONVERSATIONS.c.title,
                case(
                    (
                        first_question == bindparam("first_question", type_=Text),
                        bindparam("new_title", type_=String),
                    ),
                ),
            ),
        )
        .returning(_CONVERSATIONS.c.title.is_(None).label("untitled"))
        .cte("touched")
    )
    payload = _json_object(
        message=_json_object(
            id=stored.c.id,
            conversation_id=stored.c.conversation_id,
            role=stored.c.role,
            content=stored.c.content,
            model=stored.c.model,
            tokens_in=stored.c.tokens_in,
            tokens_out=stored.c.tokens_out,
            status=stored.c.status,
            latency_ms=stored.c.latency_ms,
            cached=stored.c.cached,
            fallback=stored.c.fallback,
            created_at=_isoformat_utc(stored.c.created_at),
        ),
        user_id=bindparam("owner_id", type_=Integer),
    )
    queued = (
        insert(_DELIVERIES)
        .from_select(
            ["webhook_id", "event", "payload"],
            subscribed_webhooks(COMPLETED_EVENT)
            .add_columns(literal(COMPLETED_EVENT), payload)
            .join(stored, true())
            .where(
                stored.c.status == "complete",
                bindparam("queue_completed", type_=Boolean),
            ),
        )
        .returning(_DELIVERIES.c.id)
        .cte("queued")
    )
    return select(
        *stored.c,
        select(touched.c.untitled).scalar_subquery().label("untitled"),
        select(func.count()).select_from(queued).scalar_subquery().label("queued"),
    )


class SqlHistoryStore:
    """The bot's ``HistoryStore`` over the messages table, for one reply.

    The caller checks ownership before handing the store to the bot; the store itself trusts
    the conversation id.
    """

    def __init__(
        self,
        session: Session,
        *,
        reply_id: int | None = None,
        user_id: int | None = None,
        history: Sequence[BaseMessage] | None = None,
        queue_completed: bool = False,
    ) -> None:
        """Wrap a session.

        Args:
            session: A concrete session (not a scoped proxy) that this store may commit; the
                bot runs in a thread of its own.
            reply_id: The assistant message created for the reply (status ``streaming``): the
                history ends before it and the reply is stored in it. None stores the reply as
                a new message after the whole history.
            user_id: The user the reply is for, whose daily usage it counts toward; None
                looks the conversation's owner up.
            history: The history, when the caller read it already (starting a reply reads it
                in the transaction that stores the reply's row, with the conversation locked):
                `load_history` then returns it without asking the database.
            queue_completed: Queue ``message.completed`` for the webhooks subscribed to it
                when a complete reply is stored, in the transaction that stores it.
        """
        self.session = session
        self.reply_id = reply_id
        self.user_id = user_id
        self.queue_completed = queue_completed
        self._history = list(history) if history is not None else None

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        """Return the conversation's latest messages the reply should see, oldest first.

        Ends the read transaction before returning, so no pooled connection is held while the
        model generates (which can take a minute). A history handed to the store is returned
        as it is, without a read.

        Args:
            conversation_id: The conversation to load.

        Returns:
            Up to ``HISTORY_LOAD_LIMIT`` messages as LangChain messages.
        """
        if self._history is not None:
            return list(self._history)
        query = history_query(conversation_id)
        if self.reply_id is not None:
            query = query.where(Message.id < self.reply_id)
        rows = self.session.execute(query).all()
        self.session.commit()
        return history_messages((row.role, row.content) for row in reversed(rows))

    def save_reply(self, conversation_id: int, reply: ReplyRecord) -> dict[str, Any] | None:
        """Store the reply, count its tokens, mark the conversation active, title it if untitled.

        The reply of a ``reply_id`` is stored by one statement (with the title and the webhook
        deliveries) and the commit; counting a generated reply's tokens adds one.

        Args:
            conversation_id: The conversation the reply belongs to.
            reply: The reply and how it was made.

        Returns:
            The stored assistant message as a JSON-able dict; None if the conversation was
            deleted meanwhile (its usage is still counted).
        """
        values = {
            "content": reply.content,
            "model": reply.model,
            "status": reply.status,
            "tokens_in": max(reply.tokens_in, 0),
            "tokens_out": max(reply.tokens_out, 0),
            "latency_ms": max(reply.latency_ms, 0),
            "cached": reply.cached,
            "fallback": reply.fallback,
        }
        user_id = self.user_id
        if user_id is None:
            user_id = self.session.scalar(
                select(Conversation.user_id).where(Conversation.id == conversation_id)
            )
        stored = (
            self._add_reply(conversation_id, values, user_id)
            if self.reply_id is None
            else self._update_reply(conversation_id, values, user_id)
        )
        if user_id is not None and not reply.cached and reply.tokens_in + reply.tokens_out > 0:
            add_usage(
                self.session,
                user_id=user_id,
                tokens_in=reply.tokens_in,
                tokens_out=reply.tokens_out,
            )
        self.session.commit()
        return stored

    def _update_reply(
        self, conversation_id: int, values: dict[str, Any], user_id: int | None
    ) -> dict[str, Any] | None:
        question = self._first_question()
        title = derive_title(question) if question is not None else None
        row = (
            self.session.execute(
                _store_reply_statement(),
                {
                    "reply_id": self.reply_id,
                    "in_conversation": conversation_id,
                    "now": utcnow(),
                    **{f"reply_{name}": value for name, value in values.items()},
                    "first_question": question if title is not None else None,
                    "new_title": title,
                    "owner_id": user_id,
                    "queue_completed": self.queue_completed and user_id is not None,
                },
            )
            .mappings()
            .one_or_none()
        )
        if row is None:
            return None
        # The history did not show the first question (or it gives no title): read it.
        if row["untitled"]:
            ensure_title(self.session, conversation_id)
        return message_to_dict(Message(**{column.key: row[column.key] for column in _MESSAGES.c}))

    def _add_reply(
        self, conversation_id: int, values: dict[str, Any], user_id: int | None
    ) -> dict[str, Any]:
        message = Message(conversation_id=conversation_id, role="assistant", **values)
        self.session.add(message)
        self.session.flush()
        untitled = self.session.scalar(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(updated_at=utcnow())
            .returning(Conversation.title.is_(None))
        )
        # Only the first exchange names a conversation: a titled one needs no more reads.
        if untitled:
            ensure_title(self.session, conversation_id)
        stored = message_to_dict(message)
        if self.queue_completed and user_id is not None and message.status == "complete":
            emit(self.session, COMPLETED_EVENT, {"message": stored, "user_id": user_id})
        return stored

    def _first_question(self) -> str | None:
        """Return the first user message of the history handed to the store, if there is one."""
        for message in self._history or ():
            if isinstance(message, HumanMessage):
                return message.content if isinstance(message.content, str) else None
        return None
