"""Wire the bot's nodes into a LangGraph graph, built once per process."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from webapp.bot.context import Context
from webapp.bot.nodes import make_generate, make_load_history, persist
from webapp.bot.state import State
from webapp.llm.factory import ChatRunnable

LOAD_HISTORY_NODE = "load_history"
GENERATE_NODE = "generate"
PERSIST_NODE = "persist"

BotGraph = CompiledStateGraph[State, Context, Any, Any]


def build_graph(
    model: ChatRunnable,
    *,
    history_token_budget: int,
    model_name: str | None = None,
) -> BotGraph:
    """Build and compile the bot graph: load_history -> generate -> persist.

    The compiled graph holds no per-reply state (no checkpointer: the app's tables are the
    history), so one instance serves every request of the process, from any thread.

    Args:
        model: The chat model, possibly wrapped with fallbacks.
        history_token_budget: Token budget for the history sent to the model.
        model_name: Name recorded for replies that do not name their model; defaults to the
            model's own `model_name` attribute, else "unknown".

    Returns:
        The compiled graph; run it with `context=Context(store=..., conversation_id=...)`.

    Raises:
        ValueError: If the token budget is not positive.
    """
    if history_token_budget <= 0:
        msg = f"history_token_budget must be positive, got {history_token_budget}"
        raise ValueError(msg)
    if model_name is None:
        model_name = str(getattr(model, "model_name", None) or "unknown")

    builder = StateGraph(State, context_schema=Context)
    builder.add_node(LOAD_HISTORY_NODE, make_load_history(history_token_budget))
    builder.add_node(GENERATE_NODE, make_generate(model, model_name=model_name))
    builder.add_node(PERSIST_NODE, persist)
    builder.add_edge(START, LOAD_HISTORY_NODE)
    builder.add_edge(LOAD_HISTORY_NODE, GENERATE_NODE)
    builder.add_edge(GENERATE_NODE, PERSIST_NODE)
    builder.add_edge(PERSIST_NODE, END)
    return builder.compile(name="chat_bot")
