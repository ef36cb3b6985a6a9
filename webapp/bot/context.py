"""Run-scoped context of the bot graph: what one reply needs beyond the graph itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.bot.events import NullSink, ReplySink
from webapp.bot.store import HistoryStore
from webapp.llm.selection import ModelSelection


@dataclass(frozen=True, kw_only=True)
class Context:
    """Passed to every run as LangGraph runtime context (`runtime.context` in the nodes).

    Attributes:
        store: Where the history comes from and the reply goes to.
        conversation_id: The conversation being answered.
        sink: Where tokens go as they are produced, and who may ask the run to stop.
        fresh: Do not answer from the cache (a regenerated reply must be a new one); the new
            reply still replaces the cached one.
        selection: The models this reply is answered by (chosen per reply from the model
            catalogue), with its system prompt and cache parameters; None answers with the
            models the bot was built with.
    """

    store: HistoryStore
    conversation_id: int
    sink: ReplySink = field(default_factory=NullSink)
    fresh: bool = False
    selection: ModelSelection | None = None
