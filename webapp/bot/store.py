"""The bot's view of conversation storage: the app's own tables are the one source of truth."""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.messages import BaseMessage

from webapp.bot.events import ReplyRecord


class HistoryStore(Protocol):
    """Load a conversation's history and store the bot's reply.

    The chat service implements this over SQLAlchemy; tests use an in-memory version. The bot
    keeps no copy of the history of its own.
    """

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        """Return the conversation's messages to answer, oldest first.

        Args:
            conversation_id: The conversation to load.

        Returns:
            Every message the reply should see, ending with the user message to answer.
        """
        ...

    def save_reply(self, conversation_id: int, reply: ReplyRecord) -> dict[str, Any] | None:
        """Store the assistant's reply, whatever its status.

        Args:
            conversation_id: The conversation the reply belongs to.
            reply: The reply and how it was made.

        Returns:
            The stored assistant message as a JSON-able dict, or None if the conversation no
            longer exists (deleted while the reply was being generated).
        """
        ...
