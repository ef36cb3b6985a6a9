"""Build the chat models the bot answers with: from the settings, or from the model catalogue.

`build_chat_model` builds the settings' model (and fallback); `ChatModelPool` builds the
models of catalogue entries, per (model name, catalogue version, call settings), keeps them
while the catalogue version holds, and makes the per-reply `ModelSelection` the bot runs with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import SecretStr

from webapp.llm.offline import OFFLINE_MODEL_NAME, OfflineChatModel
from webapp.llm.selection import ChatRunnable, ModelSelection, NamedModel
from webapp.llm.streaming import LeanChatOpenAI

if TYPE_CHECKING:
    from webapp.llm.catalogue import Catalogue, ModelEntry

__all__ = [
    "MAX_RETRIES",
    "PLACEHOLDER_API_KEY",
    "BuiltChatModel",
    "ChatModelPool",
    "ChatModelSettings",
    "ChatRunnable",
    "answered_by",
    "build_chat_model",
    "build_entry_model",
]

logger = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "not-needed"
"""API key sent when only OPENAI_BASE_URL is set: most local servers (vLLM, Ollama, llama.cpp)
ignore it, but the OpenAI client refuses to start without one."""

MAX_RETRIES = 1
"""Retries of the OpenAI client per model. The only retry layer: the bot tries the fallback model
once the primary's retries are spent, and nothing else retries, so the worst case stays bounded
at (1 + MAX_RETRIES) x LLM_TIMEOUT per configured model."""


class ChatModelSettings(Protocol):
    """The settings `build_chat_model` reads (a subset of `webapp.settings.Settings`).

    Read-only properties, so a frozen dataclass, `types.SimpleNamespace` or the real settings
    object all fit.
    """

    @property
    def llm_model(self) -> str: ...

    @property
    def llm_fallback_model(self) -> str: ...

    @property
    def llm_max_tokens(self) -> int: ...

    @property
    def llm_temperature(self) -> float: ...

    @property
    def llm_timeout(self) -> float: ...

    @property
    def openai_api_key(self) -> str: ...

    @property
    def openai_base_url(self) -> str: ...


@dataclass(frozen=True)
class BuiltChatModel:
    """The chat models ready to answer, with the names they answer under.

    The fallback is kept apart rather than wrapped around the primary
    (`Runnable.with_fallbacks`): the bot decides when to fall back (only before the first token
    went out), counts it, and checks for a stop request before trying it.

    Attributes:
        model: The primary chat model.
        model_name: Name of the primary model ("offline" for the built-in model).
        fallback: The fallback chat model, or None when there is none.
        fallback_model_name: Name of the fallback model, or None when there is none.
    """

    model: ChatRunnable
    model_name: str
    fallback: ChatRunnable | None = None
    fallback_model_name: str | None = None


def answered_by(message: BaseMessage, default: str) -> str:
    """Return the name of the model that produced a reply.

    With fallbacks, the primary and the fallback answer through the same runnable; the provider
    names the model that actually answered in the response metadata.

    Args:
        message: The model's reply.
        default: Name to report when the reply carries no model name (e.g. test fakes).

    Returns:
        The model name from the reply's response metadata, else `default`.
    """
    name = message.response_metadata.get("model_name")
    return name if isinstance(name, str) and name else default


def _openai_model(
    model: str,
    *,
    base_url: str,
    api_key: str,
    timeout: float,
    max_tokens: int,
    temperature: float,
    headers: Mapping[str, str] | None = None,
) -> BaseChatModel:
    # A ChatOpenAI whose streamed replies take the lean path of webapp.llm.streaming (kept-alive
    # connections, no per-token objects); everything else is ChatOpenAI's.
    return LeanChatOpenAI(
        model=model,
        base_url=base_url or None,
        api_key=SecretStr(api_key or PLACEHOLDER_API_KEY),
        default_headers=dict(headers) if headers else None,
        # The field's name is max_tokens; pydantic knows it by its alias.
        max_completion_tokens=max_tokens,
        temperature=temperature,
        timeout=timeout,
        max_retries=MAX_RETRIES,
        # Stream over HTTP even when called through invoke(), so callbacks (LangGraph's
        # "messages" stream) see every token whichever way the model is called.
        streaming=True,
        # Ask for the usage chunk: langchain-openai turns it off for custom base URLs, but the
        # token counts are stored with every reply (and feed quotas later).
        stream_usage=True,
    )


def _named_model(settings: ChatModelSettings, model_name: str) -> BaseChatModel:
    if model_name == OFFLINE_MODEL_NAME:
        # "offline" always means the built-in model, also as a fallback: replies keep flowing
        # (clearly labelled) when the provider is down.
        return OfflineChatModel()
    return _openai_model(
        model_name,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        timeout=settings.llm_timeout,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


def build_entry_model(entry: ModelEntry, *, max_tokens: int, temperature: float) -> ChatRunnable:
    """Build the chat model of a catalogue entry.

    Args:
        entry: The model: its provider's base URL, key, timeout and extra headers, and the
            upstream id it is asked for by.
        max_tokens: Reply length limit sent with every request.
        temperature: Sampling temperature sent with every request.

    Returns:
        The built-in offline model for the offline provider, else an OpenAI-compatible model.
    """
    provider = entry.provider
    if provider.kind == "offline":
        return OfflineChatModel()
    return _openai_model(
        entry.upstream_id,
        base_url=provider.base_url,
        api_key=provider.api_key,
        timeout=provider.timeout,
        max_tokens=max_tokens,
        temperature=temperature,
        headers=provider.extra_headers,
    )


def build_chat_model(settings: ChatModelSettings) -> BuiltChatModel:
    """Build the chat model described by the settings.

    The built-in offline model answers when neither OPENAI_API_KEY nor OPENAI_BASE_URL is set,
    or when LLM_MODEL is "offline". Otherwise LLM_MODEL is served by `ChatOpenAI` (OpenAI or any
    OpenAI-compatible server at OPENAI_BASE_URL; streamed replies through
    `webapp.llm.streaming`), and LLM_FALLBACK_MODEL, when set, is built to
    answer whenever the primary fails (error or timeout after its bounded retries); "offline" as
    the fallback name means the built-in model.

    Args:
        settings: Any object with the attributes of `ChatModelSettings`.

    Returns:
        The model and the names it answers under.
    """
    provider_configured = bool(settings.openai_api_key or settings.openai_base_url)
    primary_name = settings.llm_model.strip()
    if not provider_configured or primary_name in ("", OFFLINE_MODEL_NAME):
        if provider_configured:
            logger.warning(
                "LLM_MODEL is %r: answering with the offline model although an OpenAI provider "
                "is configured",
                settings.llm_model,
            )
        else:
            logger.info("No OPENAI_API_KEY or OPENAI_BASE_URL: answering with the offline model")
        return BuiltChatModel(model=OfflineChatModel(), model_name=OFFLINE_MODEL_NAME)

    primary = _named_model(settings, primary_name)
    fallback_name = settings.llm_fallback_model.strip() or None
    if fallback_name is None or fallback_name == primary_name:
        logger.info("Answering with %s, no fallback model", primary_name)
        return BuiltChatModel(model=primary, model_name=primary_name)

    logger.info("Answering with %s, falling back to %s", primary_name, fallback_name)
    return BuiltChatModel(
        model=primary,
        model_name=primary_name,
        fallback=_named_model(settings, fallback_name),
        fallback_model_name=fallback_name,
    )


_ModelKey = tuple[str, int, float]


class ChatModelPool:
    """The chat models of the catalogue's entries, built on first use and reused.

    One pool per process, shared by every thread. A model is built per (model name, max
    tokens, temperature) and kept while the catalogue version it was built at holds: the next
    version (any admin change) builds them anew from the new entries on first use. The HTTP
    connections outlive that (`webapp.llm.streaming.model_http_client` keeps one client per
    endpoint), so a catalogue change costs no new connection to a provider that stayed the
    same.

    Attributes:
        default_max_tokens: Reply length limit of entries that set none (LLM_MAX_TOKENS).
        default_temperature: Temperature of entries that set none (LLM_TEMPERATURE).
    """

    MAX_MODELS = 256
    """Models kept at once, at most (distinct temperatures are the only way to grow it)."""

    def __init__(self, *, default_max_tokens: int, default_temperature: float) -> None:
        """Start with no model built.

        Args:
            default_max_tokens: Reply length limit of entries that set none.
            default_temperature: Temperature of entries that set none.
        """
        self.default_max_tokens = default_max_tokens
        self.default_temperature = default_temperature
        self._version: str | None = None
        self._models: dict[_ModelKey, ChatRunnable] = {}
        self._lock = threading.Lock()

    def model(
        self, entry: ModelEntry, version: str, *, max_tokens: int, temperature: float
    ) -> ChatRunnable:
        """Return the chat model of an entry of the catalogue at ``version``, building it once.

        Args:
            entry: The catalogue entry.
            version: The version of the catalogue the entry comes from.
            max_tokens: Reply length limit.
            temperature: Sampling temperature.

        Returns:
            The model, shared with every other reply that asks for the same.
        """
        key = (entry.name, max_tokens, temperature)
        with self._lock:
            if self._version != version or len(self._models) >= self.MAX_MODELS:
                # Entries of an older catalogue may describe another provider or upstream id.
                self._models = {}
                self._version = version
            model = self._models.get(key)
            if model is None:
                model = build_entry_model(entry, max_tokens=max_tokens, temperature=temperature)
                self._models[key] = model
            return model

    def select(
        self,
        catalogue: Catalogue,
        name: str | None,
        role: str,
        *,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        strict: bool = False,
    ) -> ModelSelection:
        """Choose the models one reply is answered by, from a catalogue snapshot.

        Args:
            catalogue: The current catalogue.
            name: The model asked for; None (or, unless ``strict``, a name the user may not
                use) answers with the system default.
            role: The user's role: models and fallbacks the role may not use are left out.
            system_prompt: Sent first with every call, or None.
            temperature: Overrides every model's default temperature, or None.
            max_tokens: Reply length limit asked for (capped by each model's own), or None.
            strict: Refuse a name the user may not use.

        Returns:
            The chosen model, its usable fallbacks, and what the reply cache keys on.

        Raises:
            ModelUnavailableError: With ``strict``, if the user may not use the model (also
                without, when the user may use no model at all).
        """
        chosen = catalogue.resolve(name, role, strict=strict)
        chain = [
            entry
            for entry in catalogue.chain(chosen.name)
            if entry is chosen or entry.usable_by(role)
        ]
        models: list[NamedModel] = []
        calls: list[list[Any]] = []
        for entry in chain:
            limit = entry.max_output_tokens or self.default_max_tokens
            entry_max_tokens = min(limit, max_tokens) if max_tokens is not None else limit
            entry_temperature = _first_set(
                temperature, entry.default_temperature, self.default_temperature
            )
            runnable = self.model(
                entry,
                catalogue.version,
                max_tokens=entry_max_tokens,
                temperature=entry_temperature,
            )
            models.append(NamedModel(entry.name, runnable))
            calls.append(
                [
                    entry.name,
                    entry.provider.name,
                    entry.upstream_id,
                    entry_max_tokens,
                    entry_temperature,
                ]
            )
        primary_max_tokens, primary_temperature = calls[0][3], calls[0][4]
        # The offline model answers in microseconds: caching it would only cost Redis memory.
        cache_params = (
            None
            if chosen.provider.kind == "offline"
            else {
                "model": chosen.name,
                "fallbacks": [call[0] for call in calls[1:]],
                "calls": calls,
                "max_tokens": primary_max_tokens,
                "temperature": primary_temperature,
                "system_prompt": system_prompt or "",
            }
        )
        return ModelSelection(
            models=tuple(models),
            cache_params=cache_params,
            system_prompt=system_prompt or None,
            temperature=primary_temperature,
            max_tokens=primary_max_tokens,
        )


def _first_set(*values: float | None) -> float:
    return float(next(value for value in values if value is not None))
