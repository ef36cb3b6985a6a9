"""Request models of the OpenAI-compatible API (``/v1``): a chat completion as clients send it.

Only what the service does something with is accepted; any other parameter (``tools``,
``logprobs``, ``n`` other than 1...) is refused with a 400 naming it, rather than silently
ignored. Errors name the parameter the way OpenAI does (``messages[1].content``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import pydantic
from pydantic import BaseModel, Field, model_validator

from webapp.errors import ValidationError
from webapp.models import MESSAGE_MAX_LENGTH
from webapp.request_models.fields import TextCheck, api_error
from webapp.request_models.parsing import MODEL_CONFIG

__all__ = [
    "MAX_MESSAGES",
    "MAX_STOP_SEQUENCES",
    "STORE_CONVERSATION",
    "STORE_HEADER",
    "ChatCompletionRequest",
    "ChatMessage",
    "StreamOptions",
    "TextPart",
    "parse_completion_request",
]

STORE_HEADER = "X-Chatbot-Store"
"""The request header that asks for the exchange to be stored as a conversation..."""
STORE_CONVERSATION = "conversation"
"""...with this value. Without the header nothing is stored."""
MAX_MESSAGES = 200
"""Messages one request may carry (the history the chat service reads at most, too)."""
MAX_STOP_SEQUENCES = 4
MAX_TOKENS_LIMIT = 131_072
MODEL_NAME_MAX_LENGTH = 100
USER_MAX_LENGTH = 256
_Content = Annotated[str, TextCheck(max_length=MESSAGE_MAX_LENGTH)]


class TextPart(BaseModel):
    """A text part of a message's content (the only kind of part accepted)."""

    model_config = MODEL_CONFIG

    type: Literal["text"]
    text: _Content


class ChatMessage(BaseModel):
    """One message of the conversation to answer.

    ``developer`` is OpenAI's newer name for ``system``; both become the system prompt.
    """

    model_config = MODEL_CONFIG

    role: Literal["system", "developer", "user", "assistant"]
    content: _Content | Annotated[list[TextPart], Field(min_length=1)] = Field(
        description="Text, or a list of text parts (joined)."
    )

    @property
    def text(self) -> str:
        """Return the content as one text."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """Options of a streamed completion."""

    model_config = MODEL_CONFIG

    include_usage: bool = Field(
        False,
        description="Send a last chunk with `usage` and empty `choices` before `[DONE]`.",
    )


class ChatCompletionRequest(BaseModel):
    """A chat completion: the messages to answer, the model, and how to call it."""

    model_config = MODEL_CONFIG

    model: Annotated[
        str,
        TextCheck(min_length=1, max_length=MODEL_NAME_MAX_LENGTH),
        Field(description="A model of `GET /v1/models`."),
    ]
    messages: Annotated[
        list[ChatMessage],
        Field(
            min_length=1,
            max_length=MAX_MESSAGES,
            description="The conversation, oldest first; the last message must be the user's.",
        ),
    ]
    stream: bool = Field(False, description="Stream the reply as Server-Sent Events.")
    stream_options: StreamOptions | None = Field(None, description="Only with `stream`.")
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] | None = Field(
        None, description="Longest reply, in tokens (default: the model's setting)."
    )
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] | None = Field(
        None, description="The same as `max_tokens` (OpenAI's newer name); not both."
    )
    temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(
        None, description="Sampling temperature (default: the model's)."
    )
    top_p: Annotated[float, Field(ge=0, le=1)] | None = Field(None, description="Nucleus sampling.")
    stop: (
        Annotated[str, TextCheck(min_length=1, max_length=256)]
        | Annotated[
            list[Annotated[str, TextCheck(min_length=1, max_length=256)]],
            Field(min_length=1, max_length=MAX_STOP_SEQUENCES),
        ]
        | None
    ) = Field(None, description=f"Up to {MAX_STOP_SEQUENCES} sequences that end the reply.")
    user: Annotated[str, TextCheck(max_length=USER_MAX_LENGTH)] | None = Field(
        None, description="Your identifier of the end user; logged with the request, not sent on."
    )
    n: Literal[1] | None = Field(None, description="Choices to generate: 1 only.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise api_error(
                "Give max_tokens or max_completion_tokens, not both.", field="max_completion_tokens"
            )
        if self.stream_options is not None and not self.stream:
            raise api_error(
                "stream_options is only allowed with stream: true.", field="stream_options"
            )
        if self.messages[-1].role != "user":
            raise api_error(
                "The last message must be the user's (role: user): it is the one answered.",
                field=f"messages[{len(self.messages) - 1}].role",
            )
        return self

    @property
    def reply_token_limit(self) -> int | None:
        """Return the longest reply asked for, whichever name it was given under."""
        return (
            self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens
        )

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """Return the stop sequences, as a tuple (empty: none)."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        """Return whether a streamed reply ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


_FIELD_NAME = re.compile(r"[a-z_]+")
# What pydantic adds to an error's location for the member of a union it tried.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _param(location: tuple[int | str, ...]) -> str:
    """Return a location as OpenAI names parameters: ``("messages", 1, "content")`` ->
    ``messages[1].content`` (without the union members pydantic tried)."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _FIELD_NAME.fullmatch(part) and part not in _UNION_TAGS:
            text += f".{part}" if text else part
    return text


def _message(error: Mapping[str, Any], param: str) -> str:
    kind = error["type"]
    if kind == "api_error":
        return str(error["msg"])
    if kind == "missing":
        return f"{param} is required."
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}"
    return f"Invalid value for {param}: {error['msg']}."


def parse_completion_request(data: Mapping[str, Any]) -> ChatCompletionRequest:
    """Validate a decoded request body.

    Args:
        data: The JSON object the client sent.

    Returns:
        The request.

    Raises:
        ValidationError: With ``field`` naming the parameter at fault: an unknown one first,
            else the first invalid one.
    """
    try:
        return ChatCompletionRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    error = (unknown or errors)[0]
    context = error.get("ctx") or {}
    param = context.get("field") or _param(tuple(error["loc"])) or "body"
    raise ValidationError(_message(error, param), field=param) from None
