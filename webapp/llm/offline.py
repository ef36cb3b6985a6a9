"""Built-in offline chat model: answers without any network so a fresh deploy works end to end."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    UsageMetadata,
)
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from webapp.catalogue import OFFLINE_MODEL_NAME

OFFLINE_LABEL = "[offline model]"
"""Prefix of every offline reply, so nobody mistakes it for a real model's answer."""

_EXCERPT_CHARS = 200
# A token is a word plus the whitespace after it, so joining the tokens gives back the text
# exactly; a leading run of whitespace (never produced by the templates below) is its own token.
_TOKEN_RE = re.compile(r"\S+\s*|\s+")
_WHITESPACE_RE = re.compile(r"\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish tokens whose concatenation is the text.

    Args:
        text: The text to split.

    Returns:
        Each word with the whitespace that follows it.
    """
    return _TOKEN_RE.findall(text)


def _message_text(message: BaseMessage) -> str:
    return str(message.text)


def _excerpt(text: str) -> str:
    collapsed = _WHITESPACE_RE.sub(" ", text).strip()
    if len(collapsed) <= _EXCERPT_CHARS:
        return collapsed
    return collapsed[: _EXCERPT_CHARS - 1].rstrip() + "…"


def compose_offline_reply(messages: list[BaseMessage]) -> str:
    """Compose the offline model's reply to a conversation.

    The reply echoes the latest user message and counts the user's turns, so the chat UI, the
    history and streaming can all be exercised without a model while nobody can mistake the
    answer for a real one.

    Args:
        messages: The conversation, oldest first.

    Returns:
        The reply text, starting with the offline label.
    """
    user_turns = [message for message in messages if isinstance(message, HumanMessage)]
    hint = (
        "No language model is configured, so this reply was generated locally. Set "
        "OPENAI_API_KEY or OPENAI_BASE_URL (and LLM_MODEL) to answer with a real model."
    )
    if not user_turns:
        return f"{OFFLINE_LABEL} There is no message to answer yet. {hint}"
    said = _excerpt(_message_text(user_turns[-1])) or "(nothing)"
    return f'{OFFLINE_LABEL} You said: "{said}" This is turn {len(user_turns)}. {hint}'


def _apply_stop(text: str, stop: list[str] | None) -> str:
    # Honour stop sequences like a real model does: cut before the earliest one.
    if not stop:
        return text
    cut = min((index for s in stop if s and (index := text.find(s)) != -1), default=len(text))
    return text[:cut]


class OfflineChatModel(BaseChatModel):
    """Answer deterministically without a network, labelled as offline.

    The reply is derived from the conversation only (no randomness, no clock), streams one chunk
    per word-ish token and reports usage metadata: input tokens estimated with langchain-core's
    approximate counter, output tokens as the number of streamed tokens.
    """

    model_name: str = OFFLINE_MODEL_NAME
    """Name reported in `response_metadata["model_name"]`."""

    token_delay: float = Field(default=0.0, ge=0.0)
    """Seconds to wait between streamed tokens; 0 by default (demos may want a visible pace)."""

    @property
    def _llm_type(self) -> str:
        return "offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None) -> tuple[str, list[str]]:
        text = _apply_stop(compose_offline_reply(messages), stop)
        # A stop sequence at the very start leaves nothing; one empty token still carries the
        # usage metadata and keeps the stream non-empty.
        return text, split_tokens(text) or [""]

    def _usage(self, messages: list[BaseMessage], output_tokens: int) -> UsageMetadata:
        input_tokens = count_tokens_approximately(messages)
        return UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    def _response_metadata(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "finish_reason": "stop"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Return the whole offline reply at once."""
        text, tokens = self._reply(messages, stop)
        message = AIMessage(
            content=text,
            usage_metadata=self._usage(messages, len(tokens) if text else 0),
            response_metadata=self._response_metadata(),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Yield the offline reply one token per chunk."""
        text, tokens = self._reply(messages, stop)
        last = len(tokens) - 1
        for index, token in enumerate(tokens):
            if index and self.token_delay:
                time.sleep(self.token_delay)
            if index == last:
                # Usage and metadata ride on the last token chunk (not an extra empty chunk), so
                # there is exactly one chunk per token; strings in response_metadata would be
                # concatenated if they appeared on several chunks.
                message = AIMessageChunk(
                    content=token,
                    usage_metadata=self._usage(messages, len(tokens) if text else 0),
                    response_metadata=self._response_metadata(),
                    chunk_position="last",
                )
            else:
                message = AIMessageChunk(content=token)
            chunk = ChatGenerationChunk(message=message)
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
