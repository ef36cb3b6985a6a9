"""The chat bot: a LangGraph graph that answers a conversation and stores the reply.

Nothing here imports Flask; the chat service drives the bot through a `HistoryStore` (where
the history comes from and the reply goes) and a `ReplySink` (where tokens go as they are
produced, and who may stop the run).

Example:
    bot = Bot.from_settings(settings, cache=cache)  # once per process
    result = bot.run(store, conversation_id, sink)  # sink.token(...) as the model streams
    result.reply.status  # "complete", "stopped" or "failed"
"""

from __future__ import annotations

from typing import Any

from webapp.bot.context import Context
from webapp.bot.events import (
    COMPLETE,
    FAILED,
    STOPPED,
    ModelCall,
    NullSink,
    ReplyRecord,
    ReplyResult,
    ReplySink,
    ReplyStatus,
)
from webapp.bot.graph import BotGraph, build_graph
from webapp.bot.store import HistoryStore
from webapp.llm.cache import ReplyCache
from webapp.llm.factory import ChatModelSettings, ChatRunnable, build_chat_model
from webapp.llm.offline import OFFLINE_MODEL_NAME

DEFAULT_HISTORY_TOKEN_BUDGET = 3000
"""Tokens of history sent with each request: room for several turns while the prompt stays well
inside any current model's context window next to LLM_MAX_TOKENS of reply."""

__all__ = [
    "COMPLETE",
    "DEFAULT_HISTORY_TOKEN_BUDGET",
    "FAILED",
    "STOPPED",
    "Bot",
    "Context",
    "HistoryStore",
    "ModelCall",
    "NullSink",
    "ReplyRecord",
    "ReplyResult",
    "ReplySink",
    "ReplyStatus",
    "build_graph",
]


class Bot:
    """Answer conversations through one compiled graph around the configured models.

    Build it once per process (`Bot.from_settings`) and share it: it holds no per-reply state.

    Attributes:
        model_name: Name of the primary model.
        fallback_model_name: Name of the fallback model, or None.
        graph: The compiled LangGraph graph.
    """

    def __init__(
        self,
        model: ChatRunnable,
        *,
        model_name: str,
        fallback: ChatRunnable | None = None,
        fallback_model_name: str | None = None,
        cache: ReplyCache | None = None,
        cache_params: dict[str, Any] | None = None,
        history_token_budget: int = DEFAULT_HISTORY_TOKEN_BUDGET,
    ) -> None:
        """Build the graph around the chat models.

        Args:
            model: The primary chat model.
            model_name: Name recorded for replies that do not name their model.
            fallback: The model that answers when the primary fails before its first token.
            fallback_model_name: Its name.
            cache: The reply cache, or None.
            cache_params: Model settings that decide the answer (part of the cache key).
            history_token_budget: Token budget for the history sent to the model.
        """
        self.model_name = model_name
        self.fallback_model_name = fallback_model_name if fallback is not None else None
        self.graph: BotGraph = build_graph(
            model,
            history_token_budget=history_token_budget,
            model_name=model_name,
            fallback=fallback,
            fallback_model_name=fallback_model_name,
            cache=cache,
            cache_params=cache_params,
        )

    @classmethod
    def from_settings(
        cls,
        settings: ChatModelSettings,
        *,
        cache: ReplyCache | None = None,
        history_token_budget: int = DEFAULT_HISTORY_TOKEN_BUDGET,
    ) -> Bot:
        """Build the models the settings describe, and the graph around them.

        Args:
            settings: The app settings (any object with the `ChatModelSettings` attributes).
            cache: The reply cache; not used when the offline model answers (it is computed
                locally, so caching it would only cost memory).
            history_token_budget: Token budget for the history sent to the model.

        Returns:
            A bot ready to answer.
        """
        built = build_chat_model(settings)
        use_cache = cache if built.model_name != OFFLINE_MODEL_NAME else None
        # Everything besides the messages that decides the answer.
        cache_params = {
            "model": built.model_name,
            "fallback_model": built.fallback_model_name or "",
            "max_tokens": settings.llm_max_tokens,
            "temperature": settings.llm_temperature,
        }
        return cls(
            built.model,
            model_name=built.model_name,
            fallback=built.fallback,
            fallback_model_name=built.fallback_model_name,
            cache=use_cache,
            cache_params=cache_params,
            history_token_budget=history_token_budget,
        )

    def run(
        self,
        store: HistoryStore,
        conversation_id: int,
        sink: ReplySink | None = None,
        *,
        fresh: bool = False,
    ) -> ReplyResult:
        """Answer a conversation: tokens go to the sink as they come, the reply to the store.

        The graph runs in the calling thread. A model failure does not raise: the reply is
        stored as failed (with whatever was streamed) and reported to the sink like any other.

        Args:
            store: Where the history comes from and the reply goes to.
            conversation_id: The conversation to answer; its latest message is the user's.
            sink: Receives the tokens, may ask to stop, and gets the result; None discards.
            fresh: Generate even if the cache holds a reply (to regenerate one).

        Returns:
            How the run ended: the stored reply and the model calls made.

        Raises:
            Exception: Whatever the store or the sink raised (database or Redis down).
        """
        context = Context(
            store=store,
            conversation_id=conversation_id,
            sink=sink if sink is not None else NullSink(),
            fresh=fresh,
        )
        output = self.graph.invoke({}, context=context, version="v2")
        result: ReplyResult | None = output.value.result
        if result is None:
            msg = "The bot graph finished without a result"
            raise RuntimeError(msg)
        return result
