"""The chat bot: a LangGraph graph that answers a conversation and stores the reply.

Nothing here imports Flask; the chat service drives the bot through `HistoryStore`.

Example:
    bot = Bot.from_settings(settings)  # once per process
    for event in bot.stream(store, conversation_id):
        if isinstance(event, Token):
            send(event.text)
        else:  # Done
            send_done(event.message)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk

from webapp.bot.context import Context
from webapp.bot.graph import GENERATE_NODE, PERSIST_NODE, BotGraph, build_graph
from webapp.bot.store import HistoryStore
from webapp.llm.factory import ChatModelSettings, ChatRunnable, build_chat_model

DEFAULT_HISTORY_TOKEN_BUDGET = 3000
"""Tokens of history sent with each request: room for several turns while the prompt stays well
inside any current model's context window next to LLM_MAX_TOKENS of reply."""

__all__ = [
    "DEFAULT_HISTORY_TOKEN_BUDGET",
    "Bot",
    "BotEvent",
    "Context",
    "Done",
    "HistoryStore",
    "Token",
    "build_graph",
]


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of the reply, as the model produced it.

    Attributes:
        text: The token's text (never empty).
    """

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The reply is complete and stored.

    Attributes:
        message: The stored assistant message, as returned by `HistoryStore.save_reply`.
    """

    message: dict[str, Any]


BotEvent = Token | Done


class Bot:
    """Answer conversations with one chat model through one compiled graph.

    Build it once per process (`Bot.from_settings`) and share it: it holds no per-reply state.

    Attributes:
        model_name: Name of the primary model.
        graph: The compiled LangGraph graph.
    """

    def __init__(
        self,
        model: ChatRunnable,
        *,
        model_name: str,
        history_token_budget: int = DEFAULT_HISTORY_TOKEN_BUDGET,
    ) -> None:
        """Build the graph around a chat model.

        Args:
            model: The chat model, possibly wrapped with fallbacks.
            model_name: Name recorded for replies that do not name their model.
            history_token_budget: Token budget for the history sent to the model.
        """
        self.model_name = model_name
        self.graph: BotGraph = build_graph(
            model, history_token_budget=history_token_budget, model_name=model_name
        )

    @classmethod
    def from_settings(
        cls,
        settings: ChatModelSettings,
        *,
        history_token_budget: int = DEFAULT_HISTORY_TOKEN_BUDGET,
    ) -> Bot:
        """Build the model the settings describe, and the graph around it.

        Args:
            settings: The app settings (any object with the `ChatModelSettings` attributes).
            history_token_budget: Token budget for the history sent to the model.

        Returns:
            A bot ready to answer.
        """
        built = build_chat_model(settings)
        return cls(
            built.model, model_name=built.model_name, history_token_budget=history_token_budget
        )

    def stream(self, store: HistoryStore, conversation_id: int) -> Iterator[BotEvent]:
        """Answer a conversation, yielding tokens as the model produces them.

        Args:
            store: Where the history comes from and the reply goes to.
            conversation_id: The conversation to answer; its latest message is the user's.

        Yields:
            One `Token` per non-empty piece of the reply, then one `Done` with the stored
            message, whose content is the tokens joined.

        Raises:
            Exception: Whatever the store or the model raised; nothing is stored then. A
                fallback model takes over only while the primary has produced nothing, so a
                failure after tokens were yielded is raised, never answered twice.
        """
        context = Context(store=store, conversation_id=conversation_id)
        stored: dict[str, Any] | None = None
        streamed = False
        for part in self.graph.stream(
            {}, context=context, stream_mode=["messages", "updates"], version="v2"
        ):
            if part["type"] == "messages":
                message, metadata = part["data"]
                # The "messages" stream also carries messages that other nodes return (the
                # loaded history); only the model's output in `generate` is the reply.
                if metadata.get("langgraph_node") != GENERATE_NODE:
                    continue
                if isinstance(message, AIMessageChunk):
                    text = str(message.text)
                    if text:
                        streamed = True
                        yield Token(text)
                elif isinstance(message, AIMessage) and not streamed:
                    # A model that cannot stream delivers its reply whole, once.
                    streamed = True
                    if text := str(message.text):
                        yield Token(text)
            elif part["type"] == "updates" and PERSIST_NODE in part["data"]:
                stored = part["data"][PERSIST_NODE]["message"]
        if stored is None:
            msg = "The bot graph finished without storing a reply"
            raise RuntimeError(msg)
        yield Done(stored)

    def reply(self, store: HistoryStore, conversation_id: int) -> dict[str, Any]:
        """Answer a conversation without streaming.

        Args:
            store: Where the history comes from and the reply goes to.
            conversation_id: The conversation to answer; its latest message is the user's.

        Returns:
            The stored assistant message, as returned by `HistoryStore.save_reply`.
        """
        context = Context(store=store, conversation_id=conversation_id)
        output = self.graph.invoke({}, context=context, version="v2")
        message = output.value.message
        if message is None:
            msg = "The bot graph finished without storing a reply"
            raise RuntimeError(msg)
        return message
