"""Conversations and messages, and running the bot over them.

:class:`SqlHistoryStore` implements the bot's ``HistoryStore`` protocol over the app's own
tables, which stay the one source of truth for conversation history.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webapp import metrics
from webapp.bot import Done
from webapp.errors import NotFoundError, UpstreamError
from webapp.models import (
    CONVERSATION_TITLE_MAX_LENGTH,
    Conversation,
    Message,
    isoformat_utc,
    utcnow,
)
from webapp.validation import check_text

if TYPE_CHECKING:
    from webapp.bot import Bot, BotEvent

__all__ = [
    "HISTORY_LOAD_LIMIT",
    "MESSAGE_MAX_LENGTH",
    "SqlHistoryStore",
    "add_user_message",
    "conversation_to_dict",
    "create_conversation",
    "generate_reply",
    "get_conversation",
    "list_conversations",
    "message_to_dict",
    "stream_reply",
]

logger = logging.getLogger(__name__)

MESSAGE_MAX_LENGTH = 8000
# The bot trims history to a token budget far below this; the cap only bounds what one request
# reads from the database for a very long conversation.
HISTORY_LOAD_LIMIT = 200
# A conversation without a title is named after the start of its first message.
_AUTO_TITLE_LENGTH = 80
_GENERATION_FAILED = "The model failed to produce a reply. Please try again."


def message_to_dict(message: Message) -> dict[str, Any]:
    """Return the JSON representation of a message.

    Args:
        message: The message to serialise.

    Returns:
        The message's public fields.
    """
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "created_at": isoformat_utc(message.created_at),
    }


def conversation_to_dict(
    conversation: Conversation, *, with_messages: bool = False
) -> dict[str, Any]:
    """Return the JSON representation of a conversation.

    Args:
        conversation: The conversation to serialise.
        with_messages: Include the messages, oldest first.

    Returns:
        The conversation's public fields.
    """
    data: dict[str, Any] = {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": isoformat_utc(conversation.created_at),
        "updated_at": isoformat_utc(conversation.updated_at),
    }
    if with_messages:
        data["messages"] = [message_to_dict(message) for message in conversation.messages]
    return data


def _check_title(title: str) -> str:
    check_text(title, "title", min_length=1, max_length=CONVERSATION_TITLE_MAX_LENGTH)
    return title.strip()


def create_conversation(
    session: Session, *, user_id: int, title: str | None = None
) -> Conversation:
    """Start a conversation for a user.

    Args:
        session: Database session; committed.
        user_id: The owner.
        title: Optional title; without one, the first message names the conversation.

    Returns:
        The new conversation.

    Raises:
        ValidationError: If the title is blank or too long.
    """
    conversation = Conversation(
        user_id=user_id, title=_check_title(title) if title is not None else None
    )
    session.add(conversation)
    session.commit()
    return conversation


def list_conversations(session: Session, *, user_id: int) -> list[Conversation]:
    """Return a user's conversations, most recently active first.

    Args:
        session: Database session.
        user_id: The owner.

    Returns:
        The user's conversations (never anybody else's).
    """
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    )
    return list(session.scalars(query))


def get_conversation(session: Session, *, user_id: int, conversation_id: int) -> Conversation:
    """Return one of the user's conversations.

    Args:
        session: Database session.
        user_id: The user asking; only their own conversations are visible.
        conversation_id: The conversation's id.

    Returns:
        The conversation.

    Raises:
        NotFoundError: If it does not exist or belongs to someone else (indistinguishable, so
            ids of other users' conversations cannot be probed).
    """
    conversation = session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


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
    if conversation.title is None:
        first_line = content.strip().splitlines()[0]
        conversation.title = first_line[:_AUTO_TITLE_LENGTH].strip()
    conversation.updated_at = utcnow()
    session.commit()
    return message


class SqlHistoryStore:
    """The bot's ``HistoryStore`` over the messages table.

    The caller checks ownership before handing the store to the bot; the store itself trusts
    the conversation id.
    """

    def __init__(self, session: Session) -> None:
        """Wrap a session.

        Args:
            session: A concrete session (not a scoped proxy), so the store works from whatever
                thread the graph runs its nodes in.
        """
        self.session = session

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        """Return the conversation's latest messages, oldest first.

        Ends the read transaction before returning, so no pooled connection is held while the
        model generates (which can take a minute).

        Args:
            conversation_id: The conversation to load.

        Returns:
            Up to ``HISTORY_LOAD_LIMIT`` messages as LangChain messages.
        """
        rows = self.session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(HISTORY_LOAD_LIMIT)
        ).all()
        self.session.commit()
        return [_to_langchain(message) for message in reversed(rows)]

    def save_reply(
        self,
        conversation_id: int,
        content: str,
        *,
        model: str,
        tokens_in: int,
        tokens_out: int,
    ) -> dict[str, Any]:
        """Store the assistant's reply and mark the conversation as active.

        Args:
            conversation_id: The conversation the reply belongs to.
            content: The reply text.
            model: Name of the model that answered.
            tokens_in: Prompt tokens the model read.
            tokens_out: Tokens the model wrote.

        Returns:
            The stored assistant message as a JSON-able dict.
        """
        message = Message(
            conversation_id=conversation_id,
            role="assistant",
            content=content,
            model=model,
            tokens_in=max(tokens_in, 0),
            tokens_out=max(tokens_out, 0),
        )
        self.session.add(message)
        self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(updated_at=utcnow())
        )
        self.session.commit()
        return message_to_dict(message)


def _to_langchain(message: Message) -> BaseMessage:
    if message.role == "assistant":
        return AIMessage(content=message.content)
    return HumanMessage(content=message.content)


def generate_reply(bot: Bot, store: SqlHistoryStore, conversation_id: int) -> dict[str, Any]:
    """Run the bot to completion and return the stored reply.

    Args:
        bot: The process's bot.
        store: History store over the request's session.
        conversation_id: A conversation whose ownership the caller checked.

    Returns:
        The stored assistant message.

    Raises:
        UpstreamError: If generation failed; nothing partial is stored and the user's message
            (committed earlier) stays.
    """
    started = time.perf_counter()
    try:
        reply = bot.reply(store, conversation_id)
    except Exception as exc:
        _record_failed_call(bot, started)
        _discard_failed_reply(store, conversation_id)
        raise UpstreamError(_GENERATION_FAILED) from exc
    _record_reply(bot, reply, started)
    return reply


def stream_reply(bot: Bot, store: SqlHistoryStore, conversation_id: int) -> Iterator[BotEvent]:
    """Run the bot and yield its events (tokens, then the stored reply) as they come.

    Args:
        bot: The process's bot.
        store: History store over the request's session.
        conversation_id: A conversation whose ownership the caller checked.

    Yields:
        The bot's ``Token`` events, then one ``Done`` with the stored assistant message.

    Raises:
        UpstreamError: If generation failed, possibly after some tokens were yielded; nothing
            partial is stored and the user's message stays.
    """
    started = time.perf_counter()
    recorded = False
    # Closed explicitly when this generator is: the bot's own cleanup must not wait for the
    # garbage collector.
    with contextlib.closing(bot.stream(store, conversation_id)) as events:
        try:
            for event in events:
                if isinstance(event, Done):
                    _record_reply(bot, event.message, started)
                    recorded = True
                yield event
        except GeneratorExit:
            # The client went away (or the server is stopping) before the reply was complete.
            if not recorded:
                metrics.record_llm_call(
                    bot.model_name, outcome="cancelled", duration=time.perf_counter() - started
                )
            raise
        except Exception as exc:
            _record_failed_call(bot, started)
            _discard_failed_reply(store, conversation_id)
            raise UpstreamError(_GENERATION_FAILED) from exc


def _record_reply(bot: Bot, reply: dict[str, Any], started: float) -> None:
    metrics.record_llm_call(
        reply.get("model") or bot.model_name,
        outcome="success",
        duration=time.perf_counter() - started,
        tokens_in=reply.get("tokens_in") or 0,
        tokens_out=reply.get("tokens_out") or 0,
    )


def _record_failed_call(bot: Bot, started: float) -> None:
    # The model that failed is not known here when a fallback was also tried; the primary's
    # name keeps the label set small and says which configuration failed.
    metrics.record_llm_call(bot.model_name, outcome="error", duration=time.perf_counter() - started)


def _discard_failed_reply(store: SqlHistoryStore, conversation_id: int) -> None:
    # The traceback goes to the log; the client only learns that generation failed.
    logger.exception("generating a reply for conversation %s failed", conversation_id)
    store.session.rollback()
