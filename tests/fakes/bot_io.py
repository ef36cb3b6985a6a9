"""The bot's two interfaces in memory: a HistoryStore over a dict and a ReplySink that records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from webapp.bot import ReplyRecord, ReplyResult


class InMemoryHistoryStore:
    """A HistoryStore over a dict, recording every call in order."""

    def __init__(self, history: dict[int, list[BaseMessage]]) -> None:
        self.history = history
        self.calls: list[str] = []
        self.saved: list[dict[str, Any]] = []

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        self.calls.append("load_history")
        return list(self.history.get(conversation_id, []))

    def save_reply(self, conversation_id: int, reply: ReplyRecord) -> dict[str, Any]:
        self.calls.append("save_reply")
        message = {
            "id": len(self.saved) + 100,
            "conversation_id": conversation_id,
            "role": "assistant",
            "content": reply.content,
            "model": reply.model,
            "status": reply.status,
            "tokens_in": reply.tokens_in,
            "tokens_out": reply.tokens_out,
            "latency_ms": reply.latency_ms,
            "cached": reply.cached,
            "fallback": reply.fallback,
        }
        self.saved.append(message)
        if reply.status != "failed":
            self.history.setdefault(conversation_id, []).append(AIMessage(reply.content))
        return message


@dataclass
class RecordingSink:
    """A ReplySink that records tokens and results; asks to stop after `stop_after` tokens."""

    stop_after: int | None = None
    tokens: list[str] = field(default_factory=list)
    results: list[ReplyResult] = field(default_factory=list)
    stop_checks: int = 0

    def token(self, text: str) -> None:
        self.tokens.append(text)

    def stop_requested(self) -> bool:
        self.stop_checks += 1
        return self.stop_after is not None and len(self.tokens) >= self.stop_after

    def finish(self, result: ReplyResult) -> None:
        self.results.append(result)


def story_store(conversation_id: int) -> InMemoryHistoryStore:
    """Return a store holding one conversation: a greeting, its answer, a request for a story."""
    history: list[BaseMessage] = [
        HumanMessage("Hello"),
        AIMessage("Hi, how can I help?"),
        HumanMessage("Tell me a story"),
    ]
    return InMemoryHistoryStore({conversation_id: history})
