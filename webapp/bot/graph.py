"""Wire the bot's nodes into a LangGraph graph, built once per process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from webapp.bot.context import Context
from webapp.bot.nodes import (
    GENERATE_NODE,
    REPLAY_CACHED_NODE,
    emit,
    make_generate,
    make_load_history,
    make_lookup_cache,
    persist,
    replay_cached,
    route_after_lookup,
)
from webapp.bot.state import State
from webapp.llm.cache import ReplyCache
from webapp.llm.factory import ChatRunnable
from webapp.llm.selection import NamedModel

__all__ = [
    "EMIT_NODE",
    "GENERATE_NODE",
    "LOAD_HISTORY_NODE",
    "LOOKUP_CACHE_NODE",
    "PERSIST_NODE",
    "REPLAY_CACHED_NODE",
    "BotGraph",
    "build_graph",
]

LOAD_HISTORY_NODE = "load_history"
LOOKUP_CACHE_NODE = "lookup_cache"
PERSIST_NODE = "persist"
EMIT_NODE = "emit"

BotGraph = CompiledStateGraph[State, Context, Any, Any]


def build_graph(
    model: ChatRunnable,
    *,
    history_token_budget: int,
    model_name: str | None = None,
    fallback: ChatRunnable | None = None,
    fallback_model_name: str | None = None,
    cache: ReplyCache | None = None,
    cache_params: Mapping[str, Any] | None = None,
    cache_models: bool = True,
) -> BotGraph:
    """Build and compile the bot graph.

    ``load_history -> lookup_cache -> (replay_cached | generate) -> persist -> emit``; without a
    cache, ``load_history -> generate -> persist -> emit``. A run whose input already holds the
    trimmed messages (looked up in the cache, missed) starts at ``generate``.

    The compiled graph holds no per-reply state (no checkpointer: the app's tables are the
    history), so one instance serves every request of the process, from any thread. Run it with
    ``invoke``: a single task per step then runs in the calling thread, so tokens reach the
    sink with no thread hop.

    Args:
        model: The primary chat model.
        history_token_budget: Token budget for the history sent to the model.
        model_name: Name recorded for replies that do not name their model; defaults to the
            model's own `model_name` attribute, else "unknown".
        fallback: The model that answers when the primary fails before its first token.
        fallback_model_name: Its name; defaults like `model_name`.
        cache: Where replies are looked up and stored; None for no cache.
        cache_params: Model settings that decide the answer (part of the cache key); defaults
            to the two model names.
        cache_models: Cache the replies of ``model`` (runs without a selection); False uses
            the cache only for runs whose selection has cache parameters.

    Returns:
        The compiled graph; run it with `context=Context(store=..., conversation_id=...)`.

    Raises:
        ValueError: If the token budget is not positive.
    """
    if history_token_budget <= 0:
        msg = f"history_token_budget must be positive, got {history_token_budget}"
        raise ValueError(msg)
    models = [NamedModel(_name_of(model, model_name), model)]
    if fallback is not None:
        models.append(NamedModel(_name_of(fallback, fallback_model_name), fallback))

    builder = StateGraph(State, context_schema=Context)
    builder.add_node(LOAD_HISTORY_NODE, make_load_history(history_token_budget))
    # langgraph passes runtime and config by name, but none of its add_node overloads types a
    # node that takes both.
    builder.add_node(GENERATE_NODE, make_generate(models, cache=cache))  # type: ignore[call-overload]
    builder.add_node(PERSIST_NODE, persist)
    builder.add_node(EMIT_NODE, emit)
    # A run handed a looked-up state (the bot's cache-hit fast path missed) goes straight to the
    # model: loading and looking up again would repeat the cache round trip.
    builder.add_conditional_edges(START, route_at_start, [LOAD_HISTORY_NODE, GENERATE_NODE])
    if cache is None:
        builder.add_edge(LOAD_HISTORY_NODE, GENERATE_NODE)
    else:
        if not cache_models:
            cache_params = None
        elif cache_params is None:
            cache_params = default_cache_params(models[0].name, models[-1].name)
        builder.add_node(LOOKUP_CACHE_NODE, make_lookup_cache(cache, cache_params))
        builder.add_node(REPLAY_CACHED_NODE, replay_cached)
        builder.add_edge(LOAD_HISTORY_NODE, LOOKUP_CACHE_NODE)
        builder.add_conditional_edges(
            LOOKUP_CACHE_NODE, route_after_lookup, [REPLAY_CACHED_NODE, GENERATE_NODE]
        )
        builder.add_edge(REPLAY_CACHED_NODE, PERSIST_NODE)
    builder.add_edge(GENERATE_NODE, PERSIST_NODE)
    builder.add_edge(PERSIST_NODE, EMIT_NODE)
    builder.add_edge(EMIT_NODE, END)
    return builder.compile(name="chat_bot")


def route_at_start(state: State) -> str:
    """Load the history, unless the run was handed it (already looked up in the cache)."""
    return GENERATE_NODE if state.messages else LOAD_HISTORY_NODE


def default_cache_params(model_name: str, fallback_model_name: str | None) -> dict[str, Any]:
    """Return the cache key's model settings when the caller names none: the two model names."""
    return {"model": model_name, "fallback_model": fallback_model_name or model_name}


def _name_of(model: ChatRunnable, name: str | None) -> str:
    if name is not None:
        return name
    return str(getattr(model, "model_name", None) or "unknown")
