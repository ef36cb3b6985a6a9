"""What one reply answers with: the chosen model, its fallbacks, and the settings of the call.

A `ModelSelection` is made per reply (by `webapp.llm.factory.ChatModelPool.select` from the
model catalogue) and handed to the bot with the run; the bot itself is built once per process
and holds no model choice of its own for such runs. Nothing here imports Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

__all__ = ["ChatRunnable", "ModelSelection", "NamedModel"]

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]
"""A chat model, or any runnable that streams like one (test fakes)."""


@dataclass(frozen=True)
class NamedModel:
    """A chat model with the name its replies are recorded under.

    Attributes:
        name: The model's name (the catalogue's public name, or the configured one).
        model: The chat model.
    """

    name: str
    model: ChatRunnable


@dataclass(frozen=True)
class ModelSelection:
    """The models one reply may be answered by, in order, and how they are called.

    Attributes:
        models: The chosen model, then its fallbacks (each tried only if the one before
            failed before its first token); at least one.
        cache_params: Everything besides the messages that decides the answer (part of the
            reply cache key: the models, their upstream ids, max tokens, temperature, system
            prompt); None when the reply is not worth caching (the built-in offline model).
        system_prompt: Sent as the first message of every call, or None.
        temperature: The chosen model's sampling temperature.
        max_tokens: The chosen model's reply length limit, in tokens.
    """

    models: tuple[NamedModel, ...]
    cache_params: Mapping[str, Any] | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        """Refuse an empty chain: a reply needs a model to ask."""
        if not self.models:
            msg = "a model selection needs at least one model"
            raise ValueError(msg)

    @property
    def model_name(self) -> str:
        """Return the name of the chosen model (the first of the chain)."""
        return self.models[0].name

    @property
    def names(self) -> tuple[str, ...]:
        """Return the names of the chain, the chosen model first."""
        return tuple(named.name for named in self.models)
