"""Conversation routes of the chat service: create, list and search, get, update, delete,
export.

They register on the chat blueprint defined in :mod:`webapp.chat.routes`, where the message and
streaming routes stay. The logic is in :mod:`webapp.services.conversations`.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask_jwt_extended import current_user, jwt_required

from webapp.chat.routes import _CONVERSATION, bp
from webapp.chat.runtime import current_catalogue
from webapp.extensions import db
from webapp.models import utcnow
from webapp.request_models.chat import (
    ConversationCreate,
    ConversationExportQuery,
    ConversationListQuery,
    ConversationUpdate,
)
from webapp.request_models.parsing import accepts
from webapp.services import conversations, model_choice


def _model_settings(body: ConversationCreate | ConversationUpdate) -> dict[str, Any]:
    """Return the model settings the body sets, by column name, the model checked."""
    changes: dict[str, Any] = {}
    if "model" in body.model_fields_set:
        name = body.model
        changes["model_name"] = (
            model_choice.check_model(
                current_catalogue(current_app, without_redis=True), name, current_user.role
            )
            if name is not None
            else None
        )
    for name in ("system_prompt", "temperature"):
        if name in body.model_fields_set:
            changes[name] = getattr(body, name)
    return changes


@bp.post("/conversations")
@jwt_required()
@accepts(body=ConversationCreate, body_required=False)
def create_conversation(body: ConversationCreate) -> tuple[dict[str, Any], int]:
    """Start a conversation: ``{title?, model?, system_prompt?, temperature?}`` -> 201."""
    conversation = conversations.create_conversation(
        db.session(), user_id=current_user.id, title=body.title, **_model_settings(body)
    )
    return {"conversation": conversations.conversation_to_dict(conversation)}, 201


@bp.get("/conversations")
@jwt_required()
@accepts(query=ConversationListQuery)
def list_conversations(query: ConversationListQuery) -> dict[str, Any]:
    """List a page of the caller's conversations, most recently active first.

    Query parameters: ``limit`` (1-100, default 20), ``cursor`` (``next_cursor`` of the
    previous page), ``q`` (search titles and message text).
    """
    page = conversations.list_conversations(
        db.session(),
        user_id=current_user.id,
        limit=query.limit,
        cursor=query.cursor,
        query=query.q,
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
@accepts(body=ConversationUpdate)
def update_conversation(conversation_id: int, body: ConversationUpdate) -> dict[str, Any]:
    """Change one of the caller's conversations: its title, model, system prompt, temperature.

    ``{title?, model?, system_prompt?, temperature?}`` (at least one) ->
    ``{"conversation": ...}``; the next reply answers with the new settings.
    """
    changes = _model_settings(body)
    if "title" in body.model_fields_set:
        changes["title"] = body.title
    conversation = conversations.update_conversation(
        db.session(),
        user_id=current_user.id,
        conversation_id=conversation_id,
        changes=changes,
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
@accepts(query=ConversationExportQuery)
def export_conversation(conversation_id: int, query: ConversationExportQuery) -> Response:
    """Download one of the caller's conversations: ``?format=json`` (default) or ``md``."""
    # The format is checked before the lookup, as a body would be: the answer to a bad request
    # does not depend on whose conversation it names.
    export_format = conversations.check_export_format(query.format)
    conversation = conversations.get_conversation(
        db.session(), user_id=current_user.id, conversation_id=conversation_id
    )
    export = conversations.export_conversation(conversation, export_format, exported_at=utcnow())
    return Response(
        export.content,
        mimetype=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
