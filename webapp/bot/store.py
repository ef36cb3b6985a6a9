"""The bot's view of conversation storage: the app's own tables are the one source of truth."""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.messages import BaseMessage


class HistoryStore(Protocol):
    """Load a conversation's history and store the bot's reply.

    The chat service implements this over SQLAlchemy; tests use an in-memory version. The bot
    keeps no copy of the history of its own.
    """

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        """Return the conversation's messages, oldest first.

        Args:
            conversation_id: The conversation to load.

        Returns:
            Every message, including the user message just stored.
        """
        ...

    def save_reply(
        self,
        conversation_id: int,
        content: str,
        *,
        model: str,
        tokens_in: int,
        tokens_out: int,
    ) -> dict[str, Any]:
        """Store the assistant's reply.

        Args:
            conversation_id: The conversation the reply belongs to.
            content: The reply text.
            model: Name of the model that answered.
            tokens_in: Prompt tokens the model read.
            tokens_out: Tokens the model wrote.

        Returns:
            The stored assistant message as a JSON-able dict.
        """
        ...
