"""Messages of conversations: their JSON form, and the bot's view of them.

:class:`SqlHistoryStore` implements the bot's ``HistoryStore`` protocol over the app's own
tables, which stay the one source of truth for conversation history. Generating replies is in
:mod:`webapp.replies`; conversations themselves (listing, renaming, titles, export)
are in :mod:`webapp.services.conversations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.orm import Session

from webapp.bot import ReplyRecord
from webapp.models import MESSAGE_MAX_LENGTH, Conversation, Message, utcnow
from webapp.services.conversations import ensure_title, get_conversation, message_to_dict
from webapp.services.quota import add_usage
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
        """
        self.session = session
        self.reply_id = reply_id
        self.user_id = user_id
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
        message: Message | None
        if self.reply_id is None:
            message = Message(conversation_id=conversation_id, role="assistant", **values)
            self.session.add(message)
            self.session.flush()
        else:
            message = self.session.scalar(
                update(Message)
                .where(Message.id == self.reply_id, Message.conversation_id == conversation_id)
                .values(**values)
                .returning(Message)
                .execution_options(populate_existing=True)
            )
        user_id = self.user_id
        if user_id is None:
            user_id = self.session.scalar(
                select(Conversation.user_id).where(Conversation.id == conversation_id)
            )
        if user_id is not None and not reply.cached and reply.tokens_in + reply.tokens_out > 0:
            add_usage(
                self.session,
                user_id=user_id,
                tokens_in=reply.tokens_in,
                tokens_out=reply.tokens_out,
            )
        if message is not None:
            untitled = self.session.scalar(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(updated_at=utcnow())
                .returning(Conversation.title.is_(None))
            )
            # Only the first exchange names a conversation: a titled one needs no more reads.
            if untitled:
                ensure_title(self.session, conversation_id)
        self.session.commit()
        return message_to_dict(message) if message is not None else None
