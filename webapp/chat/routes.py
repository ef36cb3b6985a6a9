"""Routes of the chat service, under ``/api/v1/chat``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask_jwt_extended import current_user, jwt_required

from webapp.chat.runtime import get_bot
from webapp.chat.sse import reply_event_stream
from webapp.extensions import db
from webapp.request_body import read_json_object
from webapp.services import chat
from webapp.validation import optional_string, reject_unknown_fields, required_string

bp = Blueprint("chat", __name__, url_prefix="/api/v1/chat")

# Ids beyond the INTEGER column range can match nothing; refusing them in routing (404) keeps
# them from reaching PostgreSQL as an out-of-range error.
_CONVERSATION = "<int(min=1, max=2147483647):conversation_id>"


def _wants_event_stream() -> bool:
    if request.args.get("stream", "").lower() in ("1", "true", "yes"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    return best == "text/event-stream"


@bp.post("/conversations")
@jwt_required()
def create_conversation() -> tuple[dict[str, Any], int]:
    """Start a conversation: ``{title?}`` -> 201 ``{"conversation": ...}``."""
    data = read_json_object(allow_empty=True)
    reject_unknown_fields(data, ("title",))
    conversation = chat.create_conversation(
        db.session, user_id=current_user.id, title=optional_string(data, "title")
    )
    return {"conversation": chat.conversation_to_dict(conversation)}, 201


@bp.get("/conversations")
@jwt_required()
def list_conversations() -> dict[str, Any]:
    """List the caller's conversations, most recently active first."""
    conversations = chat.list_conversations(db.session, user_id=current_user.id)
    return {"conversations": [chat.conversation_to_dict(c) for c in conversations]}


@bp.get(f"/conversations/{_CONVERSATION}")
@jwt_required()
def get_conversation(conversation_id: int) -> dict[str, Any]:
    """Return one of the caller's conversations with its messages."""
    conversation = chat.get_conversation(
        db.session, user_id=current_user.id, conversation_id=conversation_id
    )
    return {"conversation": chat.conversation_to_dict(conversation, with_messages=True)}


@bp.post(f"/conversations/{_CONVERSATION}/messages")
@jwt_required()
def post_message(conversation_id: int) -> Response | tuple[dict[str, Any], int]:
    """Store the caller's message, then answer it (JSON, or streamed as Server-Sent Events)."""
    data = read_json_object()
    reject_unknown_fields(data, ("content",))
    content = required_string(data, "content")
    # Get the bot before storing anything: a bot that cannot be built is a server fault, and
    # should not leave an unanswered message behind.
    bot = get_bot(current_app)
    message = chat.add_user_message(
        db.session, user_id=current_user.id, conversation_id=conversation_id, content=content
    )
    # The bot gets the concrete session: LangGraph may run nodes outside this request's thread.
    store = chat.SqlHistoryStore(db.session())
    if _wants_event_stream():
        return reply_event_stream(
            chat.message_to_dict(message), chat.stream_reply(bot, store, conversation_id)
        )
    reply = chat.generate_reply(bot, store, conversation_id)
    return {"message": chat.message_to_dict(message), "reply": reply}, 201
