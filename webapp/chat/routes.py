"""Routes of the chat service, under ``/api/v1/chat``: the blueprint, messages and replies.

The conversation routes register on the same blueprint from :mod:`webapp.chat.conversations`.
Replies are generated in the background (:mod:`webapp.replies`); these routes start
them, stream them, stop them and wait for them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal

from flask import Blueprint, Response, current_app, request, url_for
from flask_jwt_extended import current_user, jwt_required

from webapp.chat.runtime import conversation_models, get_bot, get_runner
from webapp.chat.sse import event_stream_response, json_data
from webapp.error_handlers import error_response
from webapp.errors import UpstreamError
from webapp.extensions import db
from webapp.models import Conversation, Message
from webapp.replies import service as replies
from webapp.replies.failed import GENERATION_FAILED
from webapp.replies.runner import BusyError
from webapp.replies.stream import StreamEvent, read_reply_events
from webapp.request_models.chat import MessageCreate, Regenerate
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.services import chat
from webapp.services.quota import QuotaExceededError, daily_quota
from webapp.settings import Settings
from webapp.validation import bounded_int

bp = Blueprint("chat", __name__, url_prefix="/api/v1/chat")

# Ids beyond the column ranges can match nothing; refusing them in routing (404) keeps them
# from reaching PostgreSQL as an out-of-range error.
_CONVERSATION = id_rule("conversation_id", Conversation.id)
_REPLY = id_rule("reply_id", Message.id)
# How long a JSON client waits for a whole reply before getting 202 and the reply's links.
REPLY_WAIT_SECONDS = 300
# Event ids are sequence numbers within one reply; a reply has far fewer events.
_MAX_EVENT_ID = 10**9

ReplyMode = Literal["stream", "wait", "accepted"]


def _reply_mode() -> ReplyMode:
    """How the client wants the reply: streamed, waited for (the default), or just started."""
    if request.args.get("stream", "").lower() in ("1", "true", "yes"):
        return "stream"
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    if best == "text/event-stream":
        return "stream"
    prefer = request.headers.get("Prefer", "").lower()
    if request.args.get("wait", "").lower() in ("0", "false", "no") or "respond-async" in prefer:
        return "accepted"
    return "wait"


def _links(reply_id: int) -> dict[str, str]:
    return {
        "reply": url_for("chat.get_reply", reply_id=reply_id),
        "events": url_for("chat.reply_events", reply_id=reply_id),
        "stop": url_for("chat.stop_reply", reply_id=reply_id),
    }


def _respond(started: replies.StartedReply) -> Response | tuple[Any, ...]:
    runner = get_runner(current_app)
    reply_id = started.reply.id
    message = chat.message_to_dict(started.message)
    mode = _reply_mode()
    if mode == "stream":
        # The reply's id rides on the first event, so a streaming client can stop it.
        first = StreamEvent(0, "message", json_data({**message, "reply_id": reply_id}))
        # Generated in this process: the tokens come from memory, not from Redis.
        events = read_reply_events(
            runner.stream_redis, runner.sessions, reply_id, local=started.events.follow()
        )
        return event_stream_response(
            itertools.chain([first], events), headers={"X-Reply-Id": str(reply_id)}
        )
    links = _links(reply_id)
    accepted = (
        {"message": message, "reply": chat.message_to_dict(started.reply), "links": links},
        202,
        {"Location": links["reply"]},
    )
    if mode == "accepted":
        return accepted
    try:
        result = started.future.result(timeout=REPLY_WAIT_SECONDS)
    except TimeoutError:
        return accepted
    if result is not None and result.message is not None:
        # The row as the generation stored it (UPDATE ... RETURNING): no need to read it back.
        stored = result.message
    else:
        stored = chat.message_to_dict(
            replies.get_reply(db.session(), user_id=current_user.id, reply_id=reply_id)
        )
    if stored["status"] == "failed":
        raise UpstreamError(GENERATION_FAILED)
    return {"message": message, "reply": stored}, 201


def _answer(
    start: Callable[..., replies.StartedReply], conversation_id: int, **fields: Any
) -> Response | tuple[Any, ...]:
    # Get the bot before storing anything: a bot that cannot be built is a server fault, and
    # should not leave an unanswered message behind.
    bot = get_bot(current_app)
    settings: Settings = current_app.extensions["settings"]
    choose_models = conversation_models(
        current_app, role=current_user.role, default_model=current_user.default_model
    )
    started = start(
        db.session(),
        get_runner(current_app),
        bot,
        user_id=current_user.id,
        conversation_id=conversation_id,
        quota=daily_quota(current_user.daily_token_quota, settings.llm_daily_token_quota),
        choose_models=choose_models,
        **fields,
    )
    return _respond(started)


@bp.post(f"/conversations/{_CONVERSATION}/messages")
@jwt_required()
@accepts(body=MessageCreate)
def post_message(conversation_id: int, body: MessageCreate) -> Response | tuple[Any, ...]:
    """Store the caller's message, then answer it.

    JSON: 201 with the stored reply once it is complete (``?wait=0`` or ``Prefer:
    respond-async``: 202 at once, with the reply's links). Server-Sent Events with ``Accept:
    text/event-stream`` or ``?stream=1``.
    """
    return _answer(replies.start_reply, conversation_id, content=body.content)


@bp.post(f"/conversations/{_CONVERSATION}/regenerate")
@jwt_required()
@accepts(body=Regenerate, body_required=False)
def regenerate(conversation_id: int, body: Regenerate) -> Response | tuple[Any, ...]:
    """Replace the conversation's last reply with a new one; answered like ``post_message``."""
    del body  # no fields: an empty object or no body, anything else is refused
    return _answer(replies.regenerate_reply, conversation_id)


@bp.get(f"/replies/{_REPLY}")
@jwt_required()
def get_reply(reply_id: int) -> dict[str, Any]:
    """Return one of the caller's replies as stored now (``status`` says if it is finished)."""
    reply = replies.get_reply(db.session(), user_id=current_user.id, reply_id=reply_id)
    return {"reply": chat.message_to_dict(reply)}


def _last_event_id() -> int:
    # EventSource sends the header when it reconnects; a page that reloads passes the query
    # parameter instead (it cannot set headers).
    for name, value in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("last_event_id", request.args.get("last_event_id")),
    ):
        if value is not None and value.strip():
            return bounded_int(value.strip(), name, minimum=0, maximum=_MAX_EVENT_ID)
    return 0


@bp.get(f"/replies/{_REPLY}/events")
@jwt_required()
def reply_events(reply_id: int) -> Response:
    """Stream a reply's events from the start, or after ``Last-Event-ID``, until its end."""
    # The request is checked before anything is looked up: a bad resume point is a 400 whether
    # or not the reply exists.
    after = _last_event_id()
    reply = replies.get_reply(db.session(), user_id=current_user.id, reply_id=reply_id)
    runner = get_runner(current_app)
    # Generated in this process: followed in memory (Redis serves every other case).
    channel = runner.channels.get(reply.id)
    # No database connection is held while streaming: the session ends with the request
    # context, which a streamed body without stream_with_context does not keep.
    return event_stream_response(
        read_reply_events(
            runner.stream_redis,
            runner.sessions,
            reply.id,
            after=after,
            local=channel.follow() if channel is not None else None,
        ),
        headers={"X-Reply-Id": str(reply.id)},
    )


@bp.post(f"/replies/{_REPLY}/stop")
@jwt_required()
def stop_reply(reply_id: int) -> tuple[dict[str, Any], int]:
    """Stop generating one of the caller's replies; what was generated is kept.

    202 while the stop is on its way (the reply's stream ends with ``stopped``); 200 with the
    reply unchanged when it had already finished.
    """
    reply = replies.stop_reply(
        db.session(), get_runner(current_app), user_id=current_user.id, reply_id=reply_id
    )
    return {"reply": chat.message_to_dict(reply)}, 202 if reply.status == "streaming" else 200


@bp.errorhandler(QuotaExceededError)
def _quota_exceeded(exc: QuotaExceededError) -> tuple[Response, int]:
    response, status = error_response(exc.status, exc.code, exc.message, None, **exc.details())
    response.headers["Retry-After"] = str(exc.retry_after)
    return response, status


@bp.errorhandler(BusyError)
def _busy(exc: BusyError) -> tuple[Response, int]:
    response, status = error_response(
        exc.status, exc.code, exc.message, retry_after=exc.retry_after
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response, status
