"""Request models of the chat service (``/api/v1/chat``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from webapp.models import (
    CONVERSATION_TITLE_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    MODEL_NAME_MAX_LENGTH,
    SYSTEM_PROMPT_MAX_LENGTH,
)
from webapp.request_models.fields import TextCheck, WholeNumber, api_error
from webapp.request_models.parsing import MODEL_CONFIG
from webapp.services import conversations

__all__ = [
    "ConversationCreate",
    "ConversationExportQuery",
    "ConversationListQuery",
    "ConversationUpdate",
    "MessageCreate",
    "PreferencesUpdate",
    "Regenerate",
]

_TITLE_RULES = "Trimmed; 1 to 200 characters, one line (no control characters such as line breaks)."
Title = Annotated[
    str, TextCheck(min_length=1, max_length=CONVERSATION_TITLE_MAX_LENGTH, strip=True)
]
ModelName = Annotated[str, TextCheck(min_length=1, max_length=MODEL_NAME_MAX_LENGTH)]
_MODEL_RULES = (
    "The `name` of a model from `GET /api/v1/chat/models` (one the caller may use; anything"
    " else is a 400 naming `model`)."
)
SystemPrompt = Annotated[str, TextCheck(max_length=SYSTEM_PROMPT_MAX_LENGTH)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)]


class _ConversationSettings(BaseModel):
    """What the bot answers a conversation with; null clears a setting."""

    model_config = MODEL_CONFIG

    model: ModelName | None = Field(
        None,
        description=f"{_MODEL_RULES} Null: the user's default model, else the system default."
        " A model removed or disabled later answers with the default instead.",
    )
    system_prompt: SystemPrompt | None = Field(
        None,
        description="Sent to the model before the history with every reply (at most 4000"
        " characters); null or empty: none.",
    )
    temperature: Temperature | None = Field(
        None, description="0 to 2; null: the model's default temperature."
    )


class ConversationCreate(_ConversationSettings):
    """The new conversation; all fields are optional, and so is the body."""

    title: Title | None = Field(
        None,
        description=f"{_TITLE_RULES} Without one, the conversation is named after its first"
        " message once the first reply is stored.",
    )


class ConversationUpdate(_ConversationSettings):
    """The fields to change, at least one; an absent one stays as it is."""

    model_config = MODEL_CONFIG

    # Optional but not nullable: null is "title is required", as it always was. None stands
    # for "not sent" only as the default, which pydantic does not validate.
    title: Annotated[Title, Field(description=_TITLE_RULES)] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            # Renaming was all a PATCH did: the title is what an empty body lacks.
            raise api_error(
                "title is required (or at least one of model, system_prompt, temperature)",
                field="title",
            )
        return self


class PreferencesUpdate(BaseModel):
    """The caller's chat preferences to change."""

    model_config = MODEL_CONFIG

    default_model: ModelName | None = Field(
        description=f"{_MODEL_RULES} The model of conversations that choose none; null: the"
        " system default."
    )


class MessageCreate(BaseModel):
    """The caller's message."""

    model_config = MODEL_CONFIG

    content: Annotated[str, TextCheck(min_length=1, max_length=MESSAGE_MAX_LENGTH)]


class Regenerate(BaseModel):
    """No fields: an empty object, or no body at all."""

    model_config = MODEL_CONFIG


class ConversationListQuery(BaseModel):
    """A page of conversations, optionally searched."""

    model_config = MODEL_CONFIG

    limit: Annotated[int, WholeNumber(1, conversations.LIST_LIMIT_MAX)] = Field(
        conversations.LIST_LIMIT_DEFAULT, description="Page size."
    )
    cursor: str | None = Field(
        None,
        description="`next_cursor` of the previous page, unchanged. Keyset pagination: a page"
        " never repeats or skips a conversation because others were added or deleted.",
        json_schema_extra={"maxLength": conversations.CURSOR_MAX_LENGTH},
    )
    q: Annotated[str, TextCheck(max_length=conversations.SEARCH_MAX_LENGTH, strip=True)] | None = (
        Field(
            None,
            description="Only conversations whose title or any message contains this text,"
            " ignoring case (`%` and `_` match themselves). Blank means no filter.",
        )
    )


class ConversationExportQuery(BaseModel):
    """The export's format."""

    model_config = MODEL_CONFIG

    format: str = Field(
        "json",
        description="`json` (a `ConversationExport` document) or `md` (Markdown).",
        json_schema_extra={"enum": list(conversations.EXPORT_FORMATS)},
    )
