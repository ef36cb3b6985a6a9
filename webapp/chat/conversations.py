"""Conversation routes of the chat service: create, list and search, get, rename, delete, export.

They register on the chat blueprint defined in :mod:`webapp.chat.routes`, where the message and
streaming routes stay. The logic is in :mod:`webapp.services.conversations`.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_jwt_extended import current_user, jwt_required

from webapp.chat.routes import _CONVERSATION, bp
from webapp.extensions import db
from webapp.models import utcnow
from webapp.request_body import read_json_object
from webapp.services import conversations
from webapp.validation import (
    bounded_int,
    optional_string,
    query_parameters,
    reject_unknown_fields,
    required_string,
)


@bp.post("/conversations")
@jwt_required()
def create_conversation() -> tuple[dict[str, Any], int]:
    """Start a conversation: ``{title?}`` -> 201 ``{"conversation": ...}``."""
    data = read_json_object(allow_empty=True)
    reject_unknown_fields(data, ("title",))
    conversation = conversations.create_conversation(
        db.session(), user_id=current_user.id, title=optional_string(data, "title")
    )
    return {"conversation": conversations.conversation_to_dict(conversation)}, 201


@bp.get("/conversations")
@jwt_required()
def list_conversations() -> dict[str, Any]:
    """List a page of the caller's conversations, most recently active first.

    Query parameters: ``limit`` (1-100, default 20), ``cursor`` (``next_cursor`` of the
    previous page), ``q`` (search titles and message text).
    """
    params = query_parameters(request.args.to_dict(flat=False), ("limit", "cursor", "q"))
    limit = conversations.LIST_LIMIT_DEFAULT
    if "limit" in params:
        limit = bounded_int(
            params["limit"], "limit", minimum=1, maximum=conversations.LIST_LIMIT_MAX
        )
    page = conversations.list_conversations(
        db.session(),
        user_id=current_user.id,
        limit=limit,
        cursor=params.get("cursor"),
        query=params.get("q"),
    )
    return conversations.page_to_dict(page)


@bp.get(f"/conversations/{_CONVERSATION}")
@jwt_required()
def get_conversation(conversation_id: int) -> dict[str, Any]:
    """Return one of the caller's conversations with its messages, oldest first."""
    conversation = conversations.get_conversation(
        db.session(), user_id=current_user.id, conversation_id=conversation_id
    )
    return {"conversation": conversations.conversation_with_messages_to_dict(conversation)}


@bp.patch(f"/conversations/{_CONVERSATION}")
@jwt_required()
def rename_conversation(conversation_id: int) -> dict[str, Any]:
    """Rename one of the caller's conversations: ``{title}`` -> ``{"conversation": ...}``."""
    data = read_json_object()
    reject_unknown_fields(data, ("title",))
    conversation = conversations.rename_conversation(
        db.session(),
        user_id=current_user.id,
        conversation_id=conversation_id,
        title=required_string(data, "title"),
    )
    return {"conversation": conversations.conversation_to_dict(conversation)}


@bp.delete(f"/conversations/{_CONVERSATION}")
@jwt_required()
def delete_conversation(conversation_id: int) -> Response:
    """Delete one of the caller's conversations with its messages -> 204."""
    conversations.delete_conversation(
        db.session(), user_id=current_user.id, conversation_id=conversation_id
    )
    return Response(status=204)


@bp.get(f"/conversations/{_CONVERSATION}/export")
@jwt_required()
def export_conversation(conversation_id: int) -> Response:
    """Download one of the caller's conversations: ``?format=json`` (default) or ``md``."""
    params = query_parameters(request.args.to_dict(flat=False), ("format",))
    # The format is checked before the lookup, as a body would be: the answer to a bad request
    # does not depend on whose conversation it names.
    export_format = conversations.check_export_format(params.get("format", "json"))
    conversation = conversations.get_conversation(
        db.session(), user_id=current_user.id, conversation_id=conversation_id
    )
    export = conversations.export_conversation(conversation, export_format, exported_at=utcnow())
    return Response(
        export.content,
        mimetype=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
