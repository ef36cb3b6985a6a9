"""The reply stream: the bot's events written to a Redis stream, and read back by any client.

The writer, :class:`RedisReplySink`, is the bot's ``ReplySink`` for one reply. It numbers the
events (1, 2, ...: the SSE ids), hands each one at once to the readers in this process (an
`EventChannel`, see :mod:`webapp.replies.channel`), and writes them to the stream in batches:
the first token at once, then whatever accumulated once the oldest waited ``FLUSH_SECONDS`` or
``FLUSH_TOKENS`` are waiting, in one round trip that also asks whether the user wants to stop;
a `StreamFlusher` writes a batch the model went quiet after. The reply ends with one terminal
event. The reader, :func:`read_reply_events`, follows the channel when the reply is generated
in this process and the Redis stream otherwise (any host or worker), resumable after the last
event id a client saw: both carry the same events under the same ids.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

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
    "FLUSH_SECONDS",
    "FLUSH_TOKENS",
    "KEEPALIVE_SECONDS",
    "READ_BLOCK_MS",
    "STREAM_MAXLEN",
    "TERMINAL_EVENTS",
    "EventChannel",
    "RedisReplySink",
    "StreamEvent",
    "StreamFlusher",
    "read_reply_events",
    "record_reply_metrics",
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
# Tokens wait in a sink at most this long before the next token or stop check writes them to
# Redis (twice as long when the model goes quiet: the flusher writes them then), or until this
# many wait. Readers in this process do not wait for them at all; a stop asked on another host
# is seen by the next write.
FLUSH_SECONDS = 0.02
FLUSH_TOKENS = 32
_READ_COUNT = 512


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


class EventChannel(Protocol):
    """Where a sink hands its events to the readers in this process (a ``ReplyChannel``)."""

    def publish(self, event: StreamEvent) -> None:
        """Hand an event to the readers, at once."""
        ...

    def stop_requested(self) -> bool:
        """Return whether a request in this process asked to stop the reply."""
        ...


class RedisReplySink:
    """The bot's `ReplySink` for one reply: a Redis stream, the stop flag and the metrics."""

    def __init__(
        self,
        redis: Redis,
        reply_id: int,
        *,
        stream_ttl: int,
        channel: EventChannel | None = None,
        flusher: StreamFlusher | None = None,
    ) -> None:
        """Write to the stream of ``reply_id``.

        Args:
            redis: The Redis client.
            reply_id: The assistant message being generated (just created: nobody can have
                asked to stop it that the first write does not tell).
            stream_ttl: Seconds the stream stays readable once finished.
            channel: Also hand every event to the readers in this process.
            flusher: Writes the tokens the model went quiet after; without one they wait for
                the next token, stop check or the end.
        """
        self._redis = redis
        self._reply_id = reply_id
        self._key = stream_key(reply_id)
        self._stop_key = stop_key(reply_id)
        self._lease_key = lease_key(reply_id)
        # The last event is written, and the lease released with it.
        self.ended = False
        self._stream_ttl = stream_ttl
        self._channel = channel
        self._flusher = flusher
        # The stream's last event id; events not yet in Redis, since when the oldest waits.
        self._seq = 0
        self._waiting: list[StreamEvent] = []
        self._waiting_since = 0.0
        self._started = False
        self._stop = False
        self._stop_checked_at = time.monotonic()
        # A write the flusher could not make; raised in the generation's thread.
        self._error: Exception | None = None
        # Serialises the writes of the generation and the flusher (in event order).
        self._lock = threading.Lock()

    def _event(self, event: str, data: str) -> StreamEvent:
        self._seq += 1
        return StreamEvent(self._seq, event, data)

    def _add(self, pipe: Pipeline, event: StreamEvent) -> None:
        # Entry "0-<n>" for event n: the sequence number is the event id, in Redis as in the
        # channel.
        pipe.xadd(
            self._key,
            {"event": event.event, "data": event.data},
            id=f"0-{event.id}",
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )

    def _raise_deferred(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _write_waiting(self) -> None:
        """Write the waiting tokens and learn whether to stop, in one round trip (locked)."""
        events, self._waiting = self._waiting, []
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            self._add(pipe, event)
        pipe.exists(self._stop_key)
        if not self._started:
            # Bounds the stream's life even if this process dies before finishing it.
            pipe.expire(self._key, MAX_REPLY_SECONDS)
        results = pipe.execute()
        self._started = True
        self._stop = self._stop or bool(results[len(events)])
        self._stop_checked_at = time.monotonic()

    def token(self, text: str) -> None:
        """Hand a token to this process's readers; write it to Redis now or with the batch."""
        with self._lock:
            self._raise_deferred()
            event = self._event("token", _json({"text": text}))
            if self._channel is not None:
                self._channel.publish(event)
            self._waiting.append(event)
            if not self._started or len(self._waiting) >= FLUSH_TOKENS:
                # The first token goes at once: readers on other hosts see the reply start.
                self._write_waiting()
                return
            if len(self._waiting) == 1:
                self._waiting_since = time.monotonic()
                if self._flusher is not None:
                    self._flusher.schedule(self, self._waiting_since + 2 * FLUSH_SECONDS)

    def stop_requested(self) -> bool:
        """Return whether the user asked to stop.

        Asked of this process's channel each time; of Redis with the batched writes (a batch
        whose oldest token waited ``FLUSH_SECONDS`` is written now), or on its own when no
        write asked for ``FLUSH_SECONDS`` (between a failed model and its fallback).
        """
        if not self._stop and self._channel is not None:
            self._stop = self._channel.stop_requested()
        if self._stop:
            return True
        with self._lock:
            self._raise_deferred()
            now = time.monotonic()
            if self._waiting:
                if now - self._waiting_since >= FLUSH_SECONDS:
                    self._write_waiting()
            elif now - self._stop_checked_at >= FLUSH_SECONDS:
                self._stop = bool(self._redis.exists(self._stop_key))
                self._stop_checked_at = now
        return self._stop

    def write_overdue(self) -> None:
        """Write tokens that waited ``FLUSH_SECONDS`` or more (the flusher's call)."""
        with self._lock:
            if not self._waiting or time.monotonic() - self._waiting_since < FLUSH_SECONDS:
                return
            try:
                self._write_waiting()
            except Exception as exc:
                # The generation's next call raises it (and fails the reply).
                logger.warning("writing reply %s's tokens failed", self._reply_id, exc_info=True)
                self._error = exc

    def finish(self, result: ReplyResult) -> None:
        """End the stream with the stored outcome and record the metrics."""
        record_reply_metrics(result)
        event, data = _terminal_event(result.message)
        with self._lock:
            self._raise_deferred()
            last = self._event(event, _json(data))
            self._end(last)
        if self._channel is not None:
            self._channel.publish(last)

    def fail(self) -> None:
        """End the stream with an error, when the generation broke down (best effort)."""
        with self._lock:
            last = self._event("error", _json(error_body("upstream_error", GENERATION_FAILED)))
            try:
                self._end(last)
            except Exception:
                logger.warning(
                    "could not end the stream of reply %s", self._reply_id, exc_info=True
                )
        if self._channel is not None:
            self._channel.publish(last)

    def _end(self, last: StreamEvent) -> None:
        events, self._waiting = [*self._waiting, last], []
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            self._add(pipe, event)
        pipe.expire(self._key, self._stream_ttl)
        # After the last event: a reader that finds no lease finds the end in the stream.
        pipe.delete(self._stop_key, self._lease_key)
        pipe.execute()
        self.ended = True


class StreamFlusher:
    """Write the tokens a model went quiet after: one thread for a process's sinks.

    A sink writes its batches itself when the next token or stop check comes; when none comes
    (the model pauses), this thread writes the batch at the deadline the sink scheduled.
    """

    def __init__(self) -> None:
        """Make the flusher; its thread starts with the first batch scheduled."""
        self._changed = threading.Condition()
        self._due: dict[RedisReplySink, float] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, sink: RedisReplySink, deadline: float) -> None:
        """Write ``sink``'s overdue tokens at ``deadline`` (`time.monotonic`), if still waiting."""
        with self._changed:
            if self._closed:
                return
            earliest = min(self._due.values(), default=None)
            # A sink has one batch waiting at a time: its newer deadline replaces the old one.
            self._due[sink] = deadline
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="chat-reply-flusher", daemon=True
                )
                self._thread.start()
            elif earliest is None or deadline < earliest:
                self._changed.notify()

    def close(self) -> None:
        """Stop the thread (batches still waiting are written by their sinks' last events)."""
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed:
                    now = time.monotonic()
                    earliest = min(self._due.values(), default=None)
                    if earliest is not None and earliest <= now:
                        break
                    self._changed.wait(None if earliest is None else earliest - now)
                if self._closed:
                    return
                due = [sink for sink, deadline in self._due.items() if deadline <= now]
                for sink in due:
                    del self._due[sink]
            for sink in due:
                sink.write_overdue()


def record_reply_metrics(result: ReplyResult) -> None:
    """Record a finished run's model calls, fallback and cache hit in the metrics."""
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
    local: Iterable[StreamEvent | None] | None = None,
) -> Iterator[StreamEvent | None]:
    """Yield a reply's events after ``after``, as they are written, until its last one.

    Args:
        redis: A Redis client whose socket timeout exceeds ``block_ms``.
        sessions: Session factory, to consult the database when the stream cannot answer.
        reply_id: The reply (its ownership checked by the caller).
        after: The last event id the client has (``Last-Event-ID``); 0 for all.
        block_ms: How long one XREAD waits for new entries.
        keepalive_seconds: How long without an event before yielding None.
        local: The reply's events from the generation in this process, from the first
            (``ReplyChannel.follow``): read instead of Redis, which then only serves what
            comes after them should they end without a last event.

    Yields:
        Each event once, in order, ending with ``done``, ``stopped`` or ``error``; None when
        a keepalive is due.
    """
    last_seq = after
    if local is not None:
        for event in local:
            if event is None:
                yield None
            elif event.id > last_seq:
                last_seq = event.id
                yield event
                if event.event in TERMINAL_EVENTS:
                    return
    key = stream_key(reply_id)
    last_id = f"0-{last_seq}"
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
