"""Choose and build the chat model the bot answers with, from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from pydantic import SecretStr

from webapp.llm.offline import OFFLINE_MODEL_NAME, OfflineChatModel
from webapp.llm.streaming import LeanChatOpenAI

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


ChatRunnable = Runnable[LanguageModelInput, BaseMessage]
"""A chat model, or any runnable that streams like one (test fakes)."""


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


def _named_model(settings: ChatModelSettings, model_name: str) -> BaseChatModel:
    if model_name == OFFLINE_MODEL_NAME:
        # "offline" always means the built-in model, also as a fallback: replies keep flowing
        # (clearly labelled) when the provider is down.
        return OfflineChatModel()
    base_url = settings.openai_base_url or None
    # A ChatOpenAI whose streamed replies take the lean path of webapp.llm.streaming (kept-alive
    # connections, no per-token objects); everything else is ChatOpenAI's.
    return LeanChatOpenAI(
        model=model_name,
        base_url=base_url,
        api_key=SecretStr(settings.openai_api_key or PLACEHOLDER_API_KEY),
        # The field's name is max_tokens; pydantic knows it by its alias.
        max_completion_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        timeout=settings.llm_timeout,
        max_retries=MAX_RETRIES,
        # Stream over HTTP even when called through invoke(), so callbacks (LangGraph's
        # "messages" stream) see every token whichever way the model is called.
        streaming=True,
        # Ask for the usage chunk: langchain-openai turns it off for custom base URLs, but the
        # token counts are stored with every reply (and feed quotas later).
        stream_usage=True,
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
