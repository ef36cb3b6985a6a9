"""Request models of the chat service (``/api/v1/chat``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from webapp.models import CONVERSATION_TITLE_MAX_LENGTH, MESSAGE_MAX_LENGTH
from webapp.request_models.fields import TextCheck, WholeNumber
from webapp.request_models.parsing import MODEL_CONFIG
from webapp.services import conversations

__all__ = [
    "ConversationCreate",
    "ConversationExportQuery",
    "ConversationListQuery",
    "ConversationRename",
    "MessageCreate",
    "Regenerate",
]

_TITLE_RULES = "Trimmed; 1 to 200 characters, one line (no control characters such as line breaks)."
Title = Annotated[
    str, TextCheck(min_length=1, max_length=CONVERSATION_TITLE_MAX_LENGTH, strip=True)
]


class ConversationCreate(BaseModel):
    """The new conversation; all fields are optional, and so is the body."""

    model_config = MODEL_CONFIG

    title: Title | None = Field(
        None,
        description=f"{_TITLE_RULES} Without one, the conversation is named after its first"
        " message once the first reply is stored.",
    )


class ConversationRename(BaseModel):
    """The new title."""

    model_config = MODEL_CONFIG

    title: Annotated[Title, Field(description=_TITLE_RULES)]


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
