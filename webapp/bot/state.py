"""State of one bot run, as it flows through the graph's nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AnyMessage

from webapp.bot.events import ModelCall, ReplyRecord, ReplyResult
from webapp.llm.cache import CachedReply


@dataclass
class State:
    """What the nodes hand to each other during one reply.

    A run starts empty: the history comes from the store, never from the caller, so there is a
    single copy of the conversation.

    Attributes:
        started_at: `time.monotonic()` when the run started (for the reply's latency).
        messages: The history sent to the model, trimmed to the token budget.
        cache_key: The reply's key in the cache (None without a cache).
        cached: The cached reply, on a cache hit.
        reply: The finished reply, as it is to be stored.
        calls: The model calls made, in order.
        message: The stored assistant message returned by the store.
        result: How the run ended, as reported to the sink.
    """

    started_at: float = 0.0
    messages: list[AnyMessage] = field(default_factory=list)
    cache_key: str | None = None
    cached: CachedReply | None = None
    reply: ReplyRecord | None = None
    calls: list[ModelCall] = field(default_factory=list)
    message: dict[str, Any] | None = None
    result: ReplyResult | None = None
