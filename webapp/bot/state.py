"""State of one bot run, as it flows through load_history -> generate -> persist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage


@dataclass
class State:
    """What the nodes hand to each other during one reply.

    A run starts empty: the history comes from the store, never from the caller, so there is a
    single copy of the conversation.

    Attributes:
        messages: The history sent to the model, trimmed to the token budget.
        reply: The model's reply.
        model_name: Name of the model that answered.
        tokens_in: Prompt tokens, as reported by the model (else estimated).
        tokens_out: Completion tokens, as reported by the model (else estimated).
        message: The stored assistant message returned by the store.
    """

    messages: list[AnyMessage] = field(default_factory=list)
    reply: AIMessage | None = None
    model_name: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    message: dict[str, Any] | None = None
