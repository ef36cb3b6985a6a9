"""Run-scoped context of the bot graph: what one reply needs beyond the graph itself."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.bot.store import HistoryStore


@dataclass(frozen=True, kw_only=True)
class Context:
    """Passed to every run as LangGraph runtime context (`runtime.context` in the nodes).

    Attributes:
        store: Where the history comes from and the reply goes to.
        conversation_id: The conversation being answered.
    """

    store: HistoryStore
    conversation_id: int
