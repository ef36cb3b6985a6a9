"""The reply stream: the bot's tokens written to a Redis stream, and read back by any client.

The writer, :class:`RedisReplySink`, is the bot's ``ReplySink`` for one reply: it appends each
token (learning in the same round trip whether the user asked to stop) and ends the stream with
one terminal event. The reader, :func:`read_reply_events`, follows the stream from any host or
worker, resumable after the last event id a client saw.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from sqlalchemy.orm import Session, sessionmaker

from webapp import metrics
from webapp.bot import COMPLETE, STOPPED, ReplyResult
from webapp.errors import error_body
from webapp.models import Message
from webapp.replies.failed import GENERATION_FAILED, settle_as_failed
from webapp.replies.keys import MAX_REPLY_SECONDS, lease_key, stop_key, stream_key
from webapp.services.conversations import message_to_dict

__all__ = [
    "KEEPALIVE_SECONDS",
    "READ_BLOCK_MS",
    "STREAM_MAXLEN",
    "TERMINAL_EVENTS",
    "RedisReplySink",
    "StreamEvent",
    "read_reply_events",
]

logger = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"done", "stopped", "error"})
# Entries kept per reply stream (approximately, trimmed by Redis): far more than any reply's
# tokens, so that nothing a reconnecting client needs is trimmed; it only bounds a runaway.
STREAM_MAXLEN = 20_000
# A reader blocks this long per XREAD; between reads it checks that the generation lives. It
# must stay below the reading Redis client's socket timeout.
READ_BLOCK_MS = 5_000
# An SSE comment goes out after this long without an event: it keeps proxies from timing the
# stream out and finds clients that left.
KEEPALIVE_SECONDS = 15.0
_READ_COUNT = 512


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _terminal_event(message: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Return the last event of a reply: its name and data."""
    if message is None:
        return "error", error_body("not_found", "The conversation was deleted.")
    if message["status"] == COMPLETE:
        return "done", message
    if message["status"] == STOPPED:
        return "stopped", message
    return "error", error_body("upstream_error", GENERATION_FAILED)


# --- writing ----------------------------------------------------------------------------------


class RedisReplySink:
    """The bot's `ReplySink` for one reply: a Redis stream, the stop flag and the metrics."""

    def __init__(self, redis: Redis, reply_id: int, *, stream_ttl: int) -> None:
        """Write to the stream of ``reply_id``.

        Args:
            redis: The Redis client.
            reply_id: The assistant message being generated.
            stream_ttl: Seconds the stream stays readable once finished.
        """
        self._redis = redis
        self._reply_id = reply_id
        self._key = stream_key(reply_id)
        self._stop_key = stop_key(reply_id)
        self._stream_ttl = stream_ttl
        self._started = False
        self._stop = False
        self._stop_fresh = False

    def _add(self, pipe: Pipeline, event: str, data: str) -> None:
        # "0-*": Redis numbers the entries 0-1, 0-2, ... so the sequence number is the event id.
        pipe.xadd(
            self._key,
            {"event": event, "data": data},
            id="0-*",
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )

    def token(self, text: str) -> None:
        """Append a token, and learn in the same round trip whether to stop."""
        pipe = self._redis.pipeline(transaction=False)
        self._add(pipe, "token", _json({"text": text}))
        pipe.exists(self._stop_key)
        if not self._started:
            # Bounds the stream's life even if this process dies before finishing it.
            pipe.expire(self._key, MAX_REPLY_SECONDS)
        results = pipe.execute()
        self._started = True
        self._stop = self._stop or bool(results[1])
        self._stop_fresh = True

    def stop_requested(self) -> bool:
        """Return whether the user asked to stop (answered by the last token's round trip)."""
        if self._stop_fresh:
            self._stop_fresh = False
        elif not self._stop:
            self._stop = bool(self._redis.exists(self._stop_key))
        return self._stop

    def finish(self, result: ReplyResult) -> None:
        """End the stream with the stored outcome and record the metrics."""
        _record_metrics(result)
        event, data = _terminal_event(result.message)
        self._end(event, data)

    def fail(self) -> None:
        """End the stream with an error, when the generation broke down (best effort)."""
        try:
            self._end("error", error_body("upstream_error", GENERATION_FAILED))
        except Exception:
            logger.warning("could not end the stream of reply %s", self._reply_id, exc_info=True)

    def _end(self, event: str, data: dict[str, Any]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        self._add(pipe, event, _json(data))
        pipe.expire(self._key, self._stream_ttl)
        pipe.delete(self._stop_key)
        pipe.execute()


def _record_metrics(result: ReplyResult) -> None:
    for call in result.calls:
        metrics.record_llm_call(
            call.model,
            outcome=call.outcome,
            duration=call.seconds,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
        )
    if result.reply.fallback and len(result.calls) > 1:
        metrics.record_llm_fallback()
    if result.reply.cached:
        metrics.record_llm_cache_hit()


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamEvent:
    """One event of a reply's stream.

    Attributes:
        id: Its sequence number in the reply (1, 2, ...): the SSE event id.
        event: ``token``, ``done``, ``stopped`` or ``error`` (or ``message``, which the POST
            that starts a reply sends first, with id 0).
        data: The event's data as one line of JSON.
    """

    id: int
    event: str
    data: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(entry_id: bytes | str, fields: dict[Any, Any]) -> StreamEvent:
    event = fields.get(b"event", fields.get("event", b""))
    data = fields.get(b"data", fields.get("data", b""))
    return StreamEvent(
        id=int(_text(entry_id).partition("-")[2]), event=_text(event), data=_text(data)
    )


def read_reply_events(
    redis: Redis,
    sessions: sessionmaker[Session],
    reply_id: int,
    *,
    after: int = 0,
    block_ms: int = READ_BLOCK_MS,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> Iterator[StreamEvent | None]:
    """Yield a reply's events after ``after``, as they are written, until its last one.

    Args:
        redis: A Redis client whose socket timeout exceeds ``block_ms``.
        sessions: Session factory, to consult the database when the stream cannot answer.
        reply_id: The reply (its ownership checked by the caller).
        after: The last event id the client has (``Last-Event-ID``); 0 for all.
        block_ms: How long one XREAD waits for new entries.
        keepalive_seconds: How long without an event before yielding None.

    Yields:
        Each event once, in order, ending with ``done``, ``stopped`` or ``error``; None when
        a keepalive is due.
    """
    key = stream_key(reply_id)
    last_id = f"0-{after}"
    last_seq = after
    quiet_since = time.monotonic()
    # The first read does not block: a reply that is over (or abandoned) answers at once.
    block: int | None = None
    while True:
        response = _xread(redis, key, last_id, block)
        block = block_ms
        if response:
            for entry_id, fields in response[0][1]:
                event = _decode(entry_id, fields)
                last_id, last_seq = f"0-{event.id}", event.id
                yield event
                if event.event in TERMINAL_EVENTS:
                    return
            quiet_since = time.monotonic()
            continue
        if not redis.exists(lease_key(reply_id)):
            # Nobody is generating it: it finished before this read (and its stream expired),
            # or its process died. Entries may have arrived since the read: one more look.
            response = _xread(redis, key, last_id, None)
            if response:
                continue
            yield _settled_event(sessions, reply_id, last_seq + 1)
            return
        if time.monotonic() - quiet_since >= keepalive_seconds:
            quiet_since = time.monotonic()
            yield None


# What XREAD answers for one stream: [[key, [(entry id, fields), ...]]], or nothing.
_XreadResponse = list[tuple[Any, list[tuple[bytes | str, dict[Any, Any]]]]]


def _xread(redis: Redis, key: str, last_id: str, block: int | None) -> _XreadResponse:
    # redis-py types xread's answer for its RESP3 form too (a dict); this client speaks RESP2.
    return cast(_XreadResponse, redis.xread({key: last_id}, count=_READ_COUNT, block=block))


def _settled_event(sessions: sessionmaker[Session], reply_id: int, event_id: int) -> StreamEvent:
    """Return the last event of a reply whose stream cannot tell it, from the database."""
    with sessions() as session:
        message = session.get(Message, reply_id)
        if message is not None and message.status == "streaming":
            message = settle_as_failed(session, reply_id)
        event, data = _terminal_event(message_to_dict(message) if message is not None else None)
    return StreamEvent(event_id, event, _json(data))
