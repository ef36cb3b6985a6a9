"""The chat bot: a LangGraph graph that answers a conversation and stores the reply.

Nothing here imports Flask; the chat service drives the bot through a `HistoryStore` (where
the history comes from and the reply goes) and a `ReplySink` (where tokens go as they are
produced, and who may stop the run).

Example:
    bot = Bot.from_settings(settings, cache=cache)  # once per process
    result = bot.run(store, conversation_id, sink)  # sink.token(...) as the model streams
    result.reply.status  # "complete", "stopped" or "failed"
    # The models chosen for one reply (webapp.llm.factory.ChatModelPool.select):
    bot.run(store, conversation_id, sink, selection=selection)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

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
from webapp.bot.graph import BotGraph, build_graph, default_cache_params
from webapp.bot.nodes import (
    RuntimeNode,
    emit,
    make_load_history,
    make_lookup_cache,
    persist,
    replay_cached,
    run_cache_params,
)
from webapp.bot.state import State
from webapp.bot.store import HistoryStore
from webapp.llm.cache import ReplyCache
from webapp.llm.factory import ChatModelSettings, ChatRunnable, build_chat_model
from webapp.llm.offline import OFFLINE_MODEL_NAME
from webapp.llm.selection import ModelSelection, NamedModel

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
    "ModelSelection",
    "NamedModel",
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
    A run may bring its own models (`run(..., selection=...)`): the graph is the same, only
    the models asked, the cache key and the system prompt change.

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
        cache_models: bool = True,
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
            cache_models: Cache the replies of these models; False keeps the cache for runs
                with a selection that has cache parameters (the offline model is not worth
                caching, the providers of the catalogue are).
        """
        self.model_name = model_name
        self.fallback_model_name = fallback_model_name if fallback is not None else None
        if not cache_models:
            cache_params = None
        elif cache is not None and cache_params is None:
            cache_params = default_cache_params(model_name, self.fallback_model_name)
        self._cache_params = cache_params
        # The graph's first two steps, also run outside it for the cache-hit fast path (`run`).
        self._load_history = make_load_history(history_token_budget)
        self._lookup_cache: RuntimeNode | None = (
            make_lookup_cache(cache, cache_params) if cache is not None else None
        )
        self.graph: BotGraph = build_graph(
            model,
            history_token_budget=history_token_budget,
            model_name=model_name,
            fallback=fallback,
            fallback_model_name=fallback_model_name,
            cache=cache,
            cache_params=cache_params,
            cache_models=cache_models,
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
            cache: The reply cache; not used for the offline model's replies (computed
                locally, so caching them would only cost memory), but kept for the runs that
                bring a selection of other models.
            history_token_budget: Token budget for the history sent to the model.

        Returns:
            A bot ready to answer.
        """
        built = build_chat_model(settings)
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
            cache=cache,
            cache_params=cache_params,
            history_token_budget=history_token_budget,
            cache_models=built.model_name != OFFLINE_MODEL_NAME,
        )

    def run(
        self,
        store: HistoryStore,
        conversation_id: int,
        sink: ReplySink | None = None,
        *,
        fresh: bool = False,
        selection: ModelSelection | None = None,
    ) -> ReplyResult:
        """Answer a conversation: tokens go to the sink as they come, the reply to the store.

        The graph runs in the calling thread. With a cache (and not ``fresh``) the history is
        loaded and looked up first, outside the graph: a hit is replayed, stored and reported by
        the same nodes called in a row, with no graph run (it calls no model, so it needs none
        of the graph's routing); a miss hands the looked-up state to the graph, which starts at
        ``generate``. A model failure does not raise: the reply is
        stored as failed (with whatever was streamed) and reported to the sink like any other.

        Args:
            store: Where the history comes from and the reply goes to.
            conversation_id: The conversation to answer; its latest message is the user's.
            sink: Receives the tokens, may ask to stop, and gets the result; None discards.
            fresh: Generate even if the cache holds a reply (to regenerate one).
            selection: The models to answer with, in order (the chosen one, then its
                fallbacks), the system prompt sent first, and the cache parameters of the
                reply; None answers with the bot's own models, as always.

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
            selection=selection,
        )
        graph_input: dict[str, Any] = {}
        cached_run = run_cache_params(context, self._cache_params) is not None
        if self._lookup_cache is not None and cached_run and not fresh:
            runtime = Runtime(context=context)
            state = State()
            for node in (self._load_history, self._lookup_cache):
                state = dataclasses.replace(state, **node(state, runtime))
            if state.cached is not None:
                for step in (replay_cached, persist, emit):
                    state = dataclasses.replace(state, **step(state, runtime))
                if state.result is None:
                    msg = "The cached reply finished without a result"
                    raise RuntimeError(msg)
                return state.result
            graph_input = {
                "started_at": state.started_at,
                "messages": state.messages,
                "cache_key": state.cache_key,
            }
        output = self.graph.invoke(graph_input, context=context, version="v2")
        result: ReplyResult | None = output.value.result
        if result is None:
            msg = "The bot graph finished without a result"
            raise RuntimeError(msg)
        return result
