"""The OpenAI-compatible API, under ``/v1`` of the chat service: models and chat completions.

Any OpenAI client connects with ``base_url="https://<host>/v1"`` and a personal API key
(``Authorization: Bearer cbk_...``, see :mod:`webapp.services.api_keys`); JWTs and cookies are
no credentials here, and API keys none anywhere else.

A request goes through what a chat reply goes through: the key's owner is checked on every
request (a disabled account's keys fail at once), the general rate limit counts it as the
owner's, the daily token quota is checked before any model runs, the model is chosen from the
catalogue (strictly: a model the owner may not use is a 404), its fallbacks answer when it
fails, the reply cache, the metrics and the daily usage are the same. The exchange is stored as
a conversation of the owner only when the request asks with ``X-Chatbot-Store: conversation``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import delete, insert

from webapp.bot import ReplyResult
from webapp.chat.runtime import current_catalogue, get_bot, get_runner, select_models
from webapp.chat.sse import KEEPALIVE, SSE_HEADERS
from webapp.errors import ApiError, UpstreamError, ValidationError
from webapp.extensions import db
from webapp.llm.catalogue import ModelEntry, ModelUnavailableError
from webapp.llm.selection import ModelSelection
from webapp.models import Conversation, Message, User, utcnow
from webapp.openai_api import completions
from webapp.openai_api.errors import (
    InvalidApiKeyError,
    openai_error_body,
    register_openai_error_handlers,
)
from webapp.rate_limits import API_KEY_OWNER
from webapp.replies import service as replies
from webapp.replies.failed import GENERATION_FAILED
from webapp.replies.stream import StreamEvent, read_reply_events
from webapp.request_body import read_json_object
from webapp.request_models.openai_api import (
    STORE_CONVERSATION,
    STORE_HEADER,
    ChatCompletionRequest,
    parse_completion_request,
)
from webapp.services import api_keys
from webapp.services.quota import daily_quota, enforce_quota, tokens_used
from webapp.settings import Settings

__all__ = ["bp"]

logger = logging.getLogger(__name__)

bp = Blueprint("openai", __name__, url_prefix="/v1")
register_openai_error_handlers(bp)

# How long a client that did not ask for a stream waits for the whole reply.
REPLY_WAIT_SECONDS = 300
# An SSE comment after this long without a token: proxies keep the stream open.
KEEPALIVE_SECONDS = 15.0
# The request's key and owner, set before the rate limits are checked.
_AUTHENTICATED = "webapp.openai_api.key"
_SYSTEM_ROLES = ("system", "developer")


# --- authentication -----------------------------------------------------------------------------


@bp.before_app_request
def _authenticate_key() -> None:
    # An app-wide hook, registered with the blueprint and so before the rate limiter's: the
    # limit then counts the request as the key owner's (a bad key as its client address's).
    if request.blueprint != bp.name:
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    found = None
    if scheme.lower() == "bearer" and key.strip():
        found = api_keys.authenticate(db.session(), key.strip())
    request.environ[_AUTHENTICATED] = found
    if found is not None:
        request.environ[API_KEY_OWNER] = found.user.id


@bp.before_request
def _require_key() -> None:
    if request.environ.get(_AUTHENTICATED) is None:
        raise InvalidApiKeyError(
            "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key from"
            " POST /api/v1/auth/api-keys (keys that are revoked, expired or whose account is"
            " disabled do not work)."
        )


def _owner() -> User:
    found: api_keys.AuthenticatedKey = request.environ[_AUTHENTICATED]
    return found.user


def _settings(app: Flask) -> Settings:
    settings: Settings = app.extensions["settings"]
    return settings


# --- models -------------------------------------------------------------------------------------


def _model_object(model: ModelEntry) -> dict[str, Any]:
    # The catalogue keeps no creation time that means anything to a client (managed models
    # have none): 0, which OpenAI's clients accept.
    return {"id": model.name, "object": "model", "created": 0, "owned_by": model.provider.name}


@bp.get("/models")
def list_models() -> dict[str, Any]:
    """List the models the key's owner may use, in catalogue order."""
    catalogue = current_catalogue(current_app)
    return {
        "object": "list",
        "data": [_model_object(model) for model in catalogue.usable_by(_owner().role)],
    }


@bp.get("/models/<path:model>")
def get_model(model: str) -> dict[str, Any]:
    """Return one model the key's owner may use; 404 ``model_not_found`` for any other."""
    entry = current_catalogue(current_app).get(model)
    if entry is None or not entry.usable_by(_owner().role):
        raise ModelUnavailableError(model)
    return _model_object(entry)


# --- chat completions ---------------------------------------------------------------------------


def _quota(user: User) -> int:
    return daily_quota(user.daily_token_quota, _settings(current_app).llm_daily_token_quota)


def _check_quota(user: User) -> None:
    now = utcnow()
    enforce_quota(tokens_used(db.session(), user_id=user.id, now=now), quota=_quota(user), now=now)


def _system_prompt(body: ChatCompletionRequest) -> str | None:
    # Every system (or developer) message, in order, makes the one system prompt the models get.
    parts = [message.text for message in body.messages if message.role in _SYSTEM_ROLES]
    return "\n\n".join(parts) if parts else None


def _turns(body: ChatCompletionRequest) -> list[tuple[str, str]]:
    return [
        (message.role, message.text)
        for message in body.messages
        if message.role not in _SYSTEM_ROLES
    ]


def _store_requested() -> bool:
    value = request.headers.get(STORE_HEADER)
    if value is None:
        return False
    if value.strip().lower() != STORE_CONVERSATION:
        raise ValidationError(
            f"{STORE_HEADER} must be '{STORE_CONVERSATION}' (or left out: nothing is stored).",
            field=STORE_HEADER,
        )
    return True


def _sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


_DONE = "data: [DONE]\n\n"


def _failed_body() -> dict[str, Any]:
    return openai_error_body(GENERATION_FAILED, "server_error", code="upstream_error")


# How a reply ended: complete or not, its tokens in and out, and the model that answered.
_Outcome = tuple[bool, int, int, str | None]


class _Reply:
    """A completion being answered, stored or not, as the route reads it: tokens, then an end.

    ``tokens`` yields the first token (or None when the reply ended without any), then every
    further token, or None when a keepalive is due; ``result`` tells how it ended, once the
    tokens are read.
    """

    def __init__(self, tokens: Iterator[str | None], finish: Callable[[], _Outcome]) -> None:
        self.tokens = _skip_keepalive_until_first(tokens)
        self.result = finish


@bp.post("/chat/completions")
def create_chat_completion() -> Response | dict[str, Any]:
    """Answer the messages, as one JSON completion or streamed as chunks (``stream: true``)."""
    body = parse_completion_request(read_json_object())
    store = _store_requested()
    user = _owner()
    if body.user is not None:
        logger.info("completion for user %s on behalf of %r", user.id, body.user)
    _check_quota(user)
    system_prompt = _system_prompt(body)
    # The catalogue's version is in Redis: without it, a 503 as for a chat reply.
    with replies.redis_required():
        chosen = select_models(
            current_app,
            body.model,
            user.role,
            system_prompt=system_prompt,
            temperature=body.temperature,
            max_tokens=body.reply_token_limit,
            strict=True,
        )
    selection = completions.with_options(
        chosen, completions.CompletionOptions(top_p=body.top_p, stop=body.stop_sequences)
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    bot = get_bot(app)
    runner = get_runner(app)
    if store:
        reply = _stored_reply(body, user, system_prompt, selection)
    else:
        run = completions.start_completion(
            runner,
            bot,
            user_id=user.id,
            messages=completions.history(_turns(body)),
            selection=selection,
        )
        reply = _unstored_reply(run)
    # Nothing more is read from the database: its connection goes back to the pool now, not
    # when a long stream ends.
    db.session.remove()
    completion = completions.completion_id()
    created = completions.created_now()
    # The status line waits for the first token: a model that fails before answering is a
    # 502, as a reply that is not streamed.
    first = next(reply.tokens)
    if first is None:
        complete, tokens_in, tokens_out, model = reply.result()
        if not complete:
            raise UpstreamError(GENERATION_FAILED)
        if not body.stream:
            return completions.completion_body(
                completion, created, model or body.model, "", tokens_in, tokens_out
            )
    if not body.stream:
        text = (first or "") + "".join(token for token in reply.tokens if token)
        complete, tokens_in, tokens_out, model = reply.result()
        if not complete:
            raise UpstreamError(GENERATION_FAILED)
        return completions.completion_body(
            completion, created, model or body.model, text, tokens_in, tokens_out
        )
    return Response(
        _stream(reply, first, completion, created, body),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )


def _stream(
    reply: _Reply, first: str | None, completion: str, created: int, body: ChatCompletionRequest
) -> Iterator[str]:
    with_usage = body.include_usage

    def chunk(delta: dict[str, str] | None, **fields: Any) -> str:
        return _sse(
            completions.chunk(
                completion, created, body.model, delta, with_usage=with_usage, **fields
            )
        )

    yield chunk({"role": "assistant", "content": ""})
    pending: Iterable[str | None] = [first] if first is not None else []
    for token in _chain(pending, reply.tokens):
        yield KEEPALIVE if token is None else chunk({"content": token})
    complete, tokens_in, tokens_out, _model = reply.result()
    if not complete:
        # As OpenAI ends a stream that failed: an error event, and no [DONE].
        yield _sse(_failed_body())
        return
    yield chunk({}, finish_reason="stop")
    if with_usage:
        yield chunk(None, usage_value=completions.usage(tokens_in, tokens_out))
    yield _DONE


def _chain(first: Iterable[str | None], rest: Iterator[str | None]) -> Iterator[str | None]:
    yield from first
    yield from rest


def _unstored_reply(run: completions.CompletionRun) -> _Reply:
    ended: list[ReplyResult | None] = []

    def tokens() -> Iterator[str | None]:
        try:
            for event in run.events(KEEPALIVE_SECONDS):
                if event is None:
                    yield None
                elif event.kind == "token":
                    yield event.text
                else:
                    ended.append(event.result)
                    return
        finally:
            # The client went away (or the stream ended): a run still going stops at its next
            # token and closes the model's stream.
            run.sink.cancel()

    def finish() -> _Outcome:
        result = ended[0] if ended else None
        if not completions.succeeded(result) or result is None:
            return False, 0, 0, None
        return True, result.reply.tokens_in, result.reply.tokens_out, result.reply.model

    return _Reply(tokens(), finish)


def _skip_keepalive_until_first(tokens: Iterator[str | None]) -> Iterator[str | None]:
    # Before the status line there is nobody to keep alive: the first item is a token, or None
    # for an end without any.
    for token in tokens:
        if token is not None:
            yield token
            break
    else:
        yield None
        return
    yield from tokens


# --- the exchange stored as a conversation --------------------------------------------------------


def _stored_reply(
    body: ChatCompletionRequest, user: User, system_prompt: str | None, selection: ModelSelection
) -> _Reply:
    """Store the request's messages as a new conversation of the owner and start its reply.

    The conversation keeps the request's model, system prompt and temperature as its settings
    (for the replies the user may ask for later, in the chat UI); this reply is answered with
    the request's own selection, its other settings (max_tokens, top_p, stop) included.
    """
    turns = _turns(body)
    session = db.session()
    conversation = Conversation(
        user_id=user.id,
        model_name=body.model,
        system_prompt=system_prompt,
        temperature=body.temperature,
    )
    session.add(conversation)
    session.flush()
    earlier = turns[:-1]
    if earlier:
        session.execute(
            insert(Message),
            [
                {"conversation_id": conversation.id, "role": role, "content": text}
                for role, text in earlier
            ],
        )
    session.commit()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        started = replies.start_reply(
            session,
            get_runner(app),
            get_bot(app),
            user_id=user.id,
            conversation_id=conversation.id,
            content=turns[-1][1],
            quota=_quota(user),
            choose_models=lambda _settings: selection,
        )
    except ApiError:
        # Refused (the process is busy, Redis is down): no conversation without its reply.
        session.rollback()
        session.execute(delete(Conversation).where(Conversation.id == conversation.id))
        session.commit()
        raise
    ended: list[StreamEvent] = []
    runner = get_runner(app)
    # As a chat reply is followed: from this process's channel, else from its Redis stream.
    events = read_reply_events(
        runner.stream_redis, runner.sessions, started.reply.id, local=started.events.follow()
    )

    def tokens() -> Iterator[str | None]:
        for event in events:
            if event is None:
                yield None
            elif event.event == "token":
                yield json.loads(event.data)["text"]
            else:
                ended.append(event)
                return

    def finish() -> _Outcome:
        if not ended or ended[0].event != "done":
            return False, 0, 0, None
        message = json.loads(ended[0].data)
        return True, message["tokens_in"], message["tokens_out"], message["model"]

    return _Reply(tokens(), finish)
