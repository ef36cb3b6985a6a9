"""Conversations: create, list and search, update, delete, export, and their automatic titles.

Every function that takes a ``user_id`` only ever sees that user's conversations: anyone
else's is a :class:`NotFoundError`, indistinguishable from one that does not exist.

Search is a case-insensitive substring match (``ILIKE``) over titles and message text, with the
LIKE wildcards of the query escaped. It scans the user's own messages (through the index on
``messages(conversation_id, id)``), which is fine for thousands of messages per user; a trigram
index (``pg_trgm``) would be the next step if users keep far more.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, tuple_, update
from sqlalchemy.orm import Session

from webapp.errors import NotFoundError, ValidationError
from webapp.models import (
    CONVERSATION_TITLE_MAX_LENGTH,
    Conversation,
    Message,
    isoformat_utc,
    max_id,
)
from webapp.validation import check_text

__all__ = [
    "AUTO_TITLE_MAX_LENGTH",
    "EXPORT_FORMATS",
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "SEARCH_MAX_LENGTH",
    "UPDATABLE_FIELDS",
    "ConversationExport",
    "ConversationPage",
    "check_export_format",
    "check_title",
    "conversation_to_dict",
    "conversation_with_messages_to_dict",
    "create_conversation",
    "decode_cursor",
    "delete_conversation",
    "derive_title",
    "encode_cursor",
    "ensure_title",
    "export_conversation",
    "get_conversation",
    "like_pattern",
    "list_conversations",
    "message_to_dict",
    "page_to_dict",
    "update_conversation",
]

LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
SEARCH_MAX_LENGTH = 200
# Titles derived from the first message stay short enough for a sidebar.
AUTO_TITLE_MAX_LENGTH = 60
# Cut at a word boundary only if that keeps at least this much of the text; a first "word" of
# 60 characters (a URL, say) is cut where the limit falls instead.
_AUTO_TITLE_MIN_WORD_CUT = 20
EXPORT_FORMATS = ("json", "md")
EXPORT_DOCUMENT_FORMAT = "chatbot.conversation"
EXPORT_DOCUMENT_VERSION = 1
# A cursor is two short values; anything much longer is not one of ours.
CURSOR_MAX_LENGTH = 200
_INVALID_CURSOR = "cursor is not valid: pass next_cursor from the previous page unchanged"
# Line and paragraph separators would break a title over lines just like control characters.
_LINE_SEPARATORS = frozenset("\u2028\u2029")


# --- serialisation ----------------------------------------------------------------------------


def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
    """Return the JSON representation of a conversation (without its messages).

    Args:
        conversation: The conversation to serialise.

    Returns:
        Its public fields; ``updated_at`` is the time of its last activity (creation or the
        last message stored), which renaming does not change.
    """
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model_name,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "created_at": isoformat_utc(conversation.created_at),
        "updated_at": isoformat_utc(conversation.updated_at),
    }


def message_to_dict(message: Message) -> dict[str, Any]:
    """Return the JSON representation of a message, as the chat and admin APIs give it.

    Args:
        message: The message to serialise.

    Returns:
        The message's public fields.
    """
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "status": message.status,
        "latency_ms": message.latency_ms,
        "cached": message.cached,
        "fallback": message.fallback,
        "created_at": isoformat_utc(message.created_at),
    }


def conversation_with_messages_to_dict(conversation: Conversation) -> dict[str, Any]:
    """Return a conversation with its messages (oldest first), as the chat and admin APIs do.

    Args:
        conversation: The conversation, its messages loaded in order.

    Returns:
        Its public fields plus ``messages``.
    """
    return {
        **conversation_to_dict(conversation),
        "messages": [message_to_dict(message) for message in conversation.messages],
    }


def page_to_dict(page: ConversationPage) -> dict[str, Any]:
    """Return one page of a conversation list with the cursor of the next.

    Args:
        page: What :func:`list_conversations` returned.

    Returns:
        ``{"conversations": [...], "next_cursor": ...}``.
    """
    return {
        "conversations": [conversation_to_dict(c) for c in page.conversations],
        "next_cursor": page.next_cursor,
    }


# --- titles -----------------------------------------------------------------------------------


def _is_line_breaking(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _LINE_SEPARATORS


def check_title(title: str) -> str:
    """Return a title as it is stored: trimmed, checked to be one line of sensible length.

    Args:
        title: The title a client sent.

    Returns:
        The title without surrounding whitespace.

    Raises:
        ValidationError: If it is blank, longer than ``CONVERSATION_TITLE_MAX_LENGTH`` once
            trimmed, or contains control characters (line breaks, tabs) or lone surrogates.
    """
    title = title.strip()
    check_text(title, "title", min_length=1, max_length=CONVERSATION_TITLE_MAX_LENGTH)
    if any(_is_line_breaking(char) for char in title):
        raise ValidationError("title must be one line without control characters", field="title")
    return title


def derive_title(content: str, max_length: int = AUTO_TITLE_MAX_LENGTH) -> str | None:
    """Make a title from the text of a conversation's first message.

    Runs of whitespace and control characters (line breaks included) become single spaces, so
    the title is one line. A longer text is cut at the last word boundary that
    fits and ends with an ellipsis, the whole at most ``max_length`` characters.

    Args:
        content: The first user message.
        max_length: Longest title to return, ellipsis included.

    Returns:
        The title, or None if the message holds nothing printable.
    """
    printable = "".join(" " if _is_line_breaking(c) else c for c in content)
    text = " ".join(printable.split())
    if not text:
        return None
    if len(text) <= max_length:
        return text
    room = max_length - 1  # for the ellipsis
    cut = text.rfind(" ", 0, room + 1)
    head = text[:cut] if cut >= _AUTO_TITLE_MIN_WORD_CUT else text[:room]
    # A cut after "word," reads better without the dangling punctuation.
    return (head.rstrip(" ,;:-") or head) + "…"


def ensure_title(session: Session, conversation_id: int) -> str | None:
    """Name an untitled conversation after its first user message.

    Called when a reply is stored, so a conversation gets its title after the first exchange.
    The update only applies while the title is still null: a title the user set (or renamed to)
    in the meantime is never overwritten. It does not change ``updated_at``.

    Args:
        session: Database session; not committed (the caller commits with the reply).
        conversation_id: The conversation.

    Returns:
        The title it set, or None if the conversation already had one (or has no user
        message with printable text).
    """
    first_message = session.scalar(
        select(Message.content)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.id == conversation_id,
            Conversation.title.is_(None),
            Message.role == "user",
        )
        .order_by(Message.id)
        .limit(1)
    )
    if first_message is None:
        return None
    title = derive_title(first_message)
    if title is None:
        return None
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.title.is_(None))
        # Naming is not activity: keep the place in the list.
        .values(title=title, updated_at=Conversation.updated_at)
    )
    return title


# --- create, get, rename, delete --------------------------------------------------------------


def create_conversation(
    session: Session,
    *,
    user_id: int,
    title: str | None = None,
    model_name: str | None = None,
    system_prompt: str | None = None,
    temperature: float | None = None,
) -> Conversation:
    """Start a conversation for a user.

    Args:
        session: Database session; committed.
        user_id: The owner.
        title: Optional title; without one, the first exchange names the conversation.
        model_name: The catalogue model it answers with (checked by the caller:
            :func:`webapp.services.model_choice.check_model`); None: the user's default.
        system_prompt: Sent before the history with every reply; None or "": none.
        temperature: Overrides the model's default temperature.

    Returns:
        The new conversation.

    Raises:
        ValidationError: If the title is invalid (see :func:`check_title`).
    """
    conversation = Conversation(
        user_id=user_id,
        title=check_title(title) if title is not None else None,
        model_name=model_name,
        system_prompt=system_prompt or None,
        temperature=temperature,
    )
    session.add(conversation)
    session.commit()
    return conversation


def get_conversation(session: Session, *, user_id: int, conversation_id: int) -> Conversation:
    """Return one of the user's conversations.

    Args:
        session: Database session.
        user_id: The user asking; only their own conversations are visible.
        conversation_id: The conversation's id.

    Returns:
        The conversation.

    Raises:
        NotFoundError: If it does not exist or belongs to someone else (indistinguishable, so
            ids of other users' conversations cannot be probed).
    """
    conversation = session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


UPDATABLE_FIELDS = ("title", "model_name", "system_prompt", "temperature")
"""What :func:`update_conversation` changes: the title, and what the bot answers with."""


def update_conversation(
    session: Session, *, user_id: int, conversation_id: int, changes: Mapping[str, Any]
) -> Conversation:
    """Change the title of one of the user's conversations, or what the bot answers it with.

    Not activity: ``updated_at`` and so the conversation's place in the list stay. A model
    changed between two messages answers the next one; the replies already stored keep the
    model that wrote them.

    Args:
        session: Database session; committed.
        user_id: The user asking; must own the conversation.
        conversation_id: The conversation's id.
        changes: New values by field (`UPDATABLE_FIELDS`): ``title`` (not None),
            ``model_name`` (checked by the caller; None: the user's default),
            ``system_prompt`` (None or "": none), ``temperature`` (None: the model's).

    Returns:
        The updated conversation.

    Raises:
        ValidationError: If the title is invalid (see :func:`check_title`).
        NotFoundError: If the conversation is not the user's.
    """
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in UPDATABLE_FIELDS:
            msg = f"{name} is not a field of a conversation one may change"
            raise ValueError(msg)
        if name == "title":
            value = check_title(value)
        elif name == "system_prompt":
            value = value or None
        values[name] = value
    updated = session.scalar(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        # Setting updated_at to itself keeps the column's onupdate from touching it.
        .values(**values, updated_at=Conversation.updated_at)
        .returning(Conversation)
        .execution_options(populate_existing=True)
    )
    if updated is None:
        raise NotFoundError("Conversation not found.")
    session.commit()
    return updated


def delete_conversation(session: Session, *, user_id: int, conversation_id: int) -> None:
    """Delete one of the user's conversations and its messages.

    The messages go with it through the foreign key's ``ON DELETE CASCADE``, in the same
    statement.

    Args:
        session: Database session; committed.
        user_id: The user asking; must own the conversation.
        conversation_id: The conversation's id.

    Raises:
        NotFoundError: If the conversation is not the user's (or is already deleted).
    """
    deleted = session.scalar(
        delete(Conversation)
        .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        .returning(Conversation.id)
    )
    if deleted is None:
        raise NotFoundError("Conversation not found.")
    session.commit()


# --- listing and search -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationPage:
    """One page of a user's conversations.

    Attributes:
        conversations: Most recently active first.
        next_cursor: Pass it back for the next page; None on the last page.
    """

    conversations: list[Conversation]
    next_cursor: str | None


def encode_cursor(updated_at: datetime, conversation_id: int) -> str:
    """Encode the position after a conversation in the list as an opaque cursor.

    Args:
        updated_at: The last listed conversation's ``updated_at`` (timezone-aware).
        conversation_id: Its id, which breaks ties between equal timestamps.

    Returns:
        A URL-safe string.
    """
    raw = json.dumps([isoformat_utc(updated_at), conversation_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Decode a cursor made by :func:`encode_cursor`.

    A cursor is not signed: a forged one only moves where the caller's own list starts.

    Args:
        cursor: The string a client sent back.

    Returns:
        ``(updated_at, conversation_id)`` of the last conversation of the previous page.

    Raises:
        ValidationError: Naming ``cursor``, if it is not one this service made.
    """
    if not cursor or len(cursor) > CURSOR_MAX_LENGTH:
        raise ValidationError(_INVALID_CURSOR, field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, conversation_id = json.loads(raw)
        updated_at = datetime.fromisoformat(timestamp)
    except (binascii.Error, ValueError, TypeError):
        # ValueError also covers bad UTF-8, bad JSON and a list of the wrong length.
        raise ValidationError(_INVALID_CURSOR, field="cursor") from None
    if (
        updated_at.tzinfo is None
        or type(conversation_id) is not int
        or not 1 <= conversation_id <= max_id(Conversation.id)
    ):
        raise ValidationError(_INVALID_CURSOR, field="cursor")
    return updated_at, conversation_id


def like_pattern(text: str) -> str:
    """Return a LIKE pattern matching ``text`` anywhere, its own wildcards taken literally.

    The escape character is the backslash (PostgreSQL's default, also given explicitly).

    Args:
        text: What to look for.

    Returns:
        ``%text%`` with ``\\``, ``%`` and ``_`` escaped.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _check_search(query: str) -> str | None:
    query = query.strip()
    if not query:
        return None
    return check_text(query, "q", min_length=1, max_length=SEARCH_MAX_LENGTH)


def list_conversations(
    session: Session,
    *,
    user_id: int,
    limit: int = LIST_LIMIT_DEFAULT,
    cursor: str | None = None,
    query: str | None = None,
) -> ConversationPage:
    """Return a page of a user's conversations, most recently active first.

    Keyset pagination on ``(updated_at, id)``: a page never repeats or skips a conversation
    because others were created or deleted meanwhile. A conversation that becomes active while
    a client pages moves to the top, so that client sees it when it lists again from the start.

    Args:
        session: Database session.
        user_id: The owner; nobody else's conversations are ever listed.
        limit: Page size, 1 to ``LIST_LIMIT_MAX``.
        cursor: ``next_cursor`` of the previous page, or None for the first page.
        query: Only conversations whose title or any message contains this text, ignoring
            case; blank means no filter.

    Returns:
        The page and the cursor of the next one.

    Raises:
        ValidationError: Naming ``limit``, ``cursor`` or ``q`` if one is invalid.
    """
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationError(f"limit must be between 1 and {LIST_LIMIT_MAX}", field="limit")
    statement = select(Conversation).where(Conversation.user_id == user_id)
    if cursor is not None:
        after_updated_at, after_id = decode_cursor(cursor)
        statement = statement.where(
            tuple_(Conversation.updated_at, Conversation.id) < tuple_(after_updated_at, after_id)
        )
    search = _check_search(query) if query is not None else None
    if search is not None:
        pattern = like_pattern(search)
        in_messages = exists().where(
            Message.conversation_id == Conversation.id,
            Message.content.ilike(pattern, escape="\\"),
        )
        statement = statement.where(Conversation.title.ilike(pattern, escape="\\") | in_messages)
    # One more than asked for says whether there is a next page.
    rows = list(
        session.scalars(
            statement.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(
                limit + 1
            )
        )
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last.updated_at, last.id)
    return ConversationPage(conversations=page, next_cursor=next_cursor)


# --- export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationExport:
    """A conversation rendered as a file to download.

    Attributes:
        content: The file's text.
        media_type: Its MIME type.
        filename: A safe ASCII file name for ``Content-Disposition``.
    """

    content: str
    media_type: str
    filename: str


def _export_filename(conversation: Conversation, extension: str) -> str:
    # ASCII letters, digits and dashes only: safe in a quoted header value on every client.
    ascii_title = (
        unicodedata.normalize("NFKD", conversation.title or "").encode("ascii", "ignore").decode()
    )
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:50].rstrip("-")
    stem = f"conversation-{conversation.id}" + (f"-{slug}" if slug else "")
    return f"{stem}.{extension}"


def _export_message(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "created_at": isoformat_utc(message.created_at),
    }


def _export_document(conversation: Conversation, exported_at: datetime) -> dict[str, Any]:
    return {
        "format": EXPORT_DOCUMENT_FORMAT,
        "version": EXPORT_DOCUMENT_VERSION,
        "exported_at": isoformat_utc(exported_at),
        "conversation": {
            **conversation_to_dict(conversation),
            "messages": [_export_message(message) for message in conversation.messages],
        },
    }


def _export_markdown(conversation: Conversation, exported_at: datetime) -> str:
    # Titles are one line when stored through the API; joining whitespace keeps a heading one
    # line even for older rows.
    title = " ".join((conversation.title or "").split()) or "Untitled conversation"
    lines = [
        f"# {title}",
        "",
        f"- Conversation: {conversation.id}",
        f"- Started: {isoformat_utc(conversation.created_at)}",
        f"- Exported: {isoformat_utc(exported_at)}",
    ]
    for message in conversation.messages:
        speaker = "User" if message.role == "user" else "Assistant"
        if message.model:
            speaker += f" ({message.model})"
        # Message text is Markdown already (code blocks, lists): it goes in as written.
        lines += ["", f"## {speaker} · {isoformat_utc(message.created_at)}", "", message.content]
    return "\n".join(lines) + "\n"


def check_export_format(export_format: str) -> str:
    """Check that a conversation can be exported in a format.

    Args:
        export_format: The format a client asked for.

    Returns:
        The format, one of ``EXPORT_FORMATS``.

    Raises:
        ValidationError: Naming ``format``, if it is not one of ``EXPORT_FORMATS``.
    """
    if export_format not in EXPORT_FORMATS:
        raise ValidationError(f"format must be one of: {', '.join(EXPORT_FORMATS)}", field="format")
    return export_format


def export_conversation(
    conversation: Conversation, export_format: str, *, exported_at: datetime
) -> ConversationExport:
    """Render a conversation with all its messages as a JSON or Markdown file.

    Args:
        conversation: A conversation whose ownership the caller checked.
        export_format: ``json`` or ``md``.
        exported_at: The time to record as the export's.

    Returns:
        The file.

    Raises:
        ValidationError: Naming ``format``, if it is not one of ``EXPORT_FORMATS``.
    """
    if check_export_format(export_format) == "json":
        document = _export_document(conversation, exported_at)
        return ConversationExport(
            json.dumps(document, ensure_ascii=False, indent=2) + "\n",
            "application/json",
            _export_filename(conversation, "json"),
        )
    return ConversationExport(
        _export_markdown(conversation, exported_at),
        "text/markdown",
        _export_filename(conversation, "md"),
    )
