"""Generating replies independently of the HTTP request, through a Redis stream per reply.

How a reply flows:

1. ``start_reply`` (POST a message) or ``regenerate_reply``: in one transaction, with the
   conversation locked, it checks the quota, stores the user's message and an assistant message
   with ``status="streaming"`` (the reply's id from then on), takes a lease on the reply in
   Redis, commits, then hands the reply to the process's `ReplyRunner`. Nothing has called a
   model yet, and everything the user sent is stored.
2. The runner generates in a thread of its own (at most ``LLM_MAX_CONCURRENT_REPLIES`` per
   process; beyond that new replies get 503 rather than queueing). The bot's tokens go to the
   Redis stream ``chat:reply:<id>`` (``XADD``, capped length), ending with one entry ``done``,
   ``stopped`` or ``error``; then the stream expires after ``REPLY_STREAM_TTL`` seconds. The
   assistant message is completed in place (content, status, model, tokens, latency, cached,
   fallback) before that last entry is written.
3. ``read_reply_events`` serves any client, on any host and worker, from the stream (``XREAD
   BLOCK``), starting after the event id it last saw (``Last-Event-ID``): event ids are the
   entries' sequence numbers, so a client that reconnects gets the rest exactly once.
4. ``stop_reply`` sets ``chat:reply:<id>:stop``; the generation sees it after the next token
   (Redis is asked in the same round trip that writes the token), closes the model's stream
   (the model server sees the connection close) and stores what it had as ``stopped``.

A generation whose process died (killed during a deploy) leaves a ``streaming`` message behind.
Its lease, refreshed every few seconds by the live process, then expires: readers, and the next
message posted to the conversation, settle it as ``failed``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis import Redis, RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from webapp import metrics
from webapp.bot import COMPLETE, STOPPED, Bot, ReplyResult
from webapp.errors import ConflictError, NotFoundError, ServiceUnavailableError, error_body
from webapp.models import Conversation, Message, utcnow
from webapp.services import webhooks
from webapp.services.chat import MESSAGE_MAX_LENGTH, SqlHistoryStore, message_to_dict
from webapp.services.quota import check_quota
from webapp.validation import check_text

__all__ = [
    "GENERATION_FAILED",
    "READ_BLOCK_MS",
    "TERMINAL_EVENTS",
    "BusyError",
    "RedisReplySink",
    "ReplyRunner",
    "StartedReply",
    "StreamEvent",
    "get_reply",
    "read_reply_events",
    "regenerate_reply",
    "start_reply",
    "stop_reply",
    "stream_key",
]

logger = logging.getLogger(__name__)

GENERATION_FAILED = "The model failed to produce a reply. Please try again."
TERMINAL_EVENTS = frozenset({"done", "stopped", "error"})

# Longest a reply may take: bounds the life of its stream and stop flag should nothing else.
MAX_REPLY_SECONDS = 24 * 3600
# The live process refreshes its replies' leases this often; a lease outlives a few misses.
LEASE_REFRESH_SECONDS = 10.0
LEASE_TTL_SECONDS = 30
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


def stream_key(reply_id: int) -> str:
    """Return the Redis key of a reply's event stream."""
    return f"chat:reply:{reply_id}"


def _stop_key(reply_id: int) -> str:
    return f"chat:reply:{reply_id}:stop"


def _lease_key(reply_id: int) -> str:
    return f"chat:reply:{reply_id}:lease"


class BusyError(ServiceUnavailableError):
    """Raised when this process already generates as many replies as it may."""

    retry_after = 2


# --- the runner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    reply_id: int
    conversation_id: int
    user_id: int
    fresh: bool = False


class _Slot:
    """A reserved generation slot; released once, by the job or on failure before it."""

    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        self._semaphore = semaphore
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._released:
                self._released = True
                self._semaphore.release()


class ReplyRunner:
    """Generate replies in background threads of this process, bounded in number.

    One per process (see ``webapp.chat.runtime``). Generation does not depend on any HTTP
    connection: a client that goes away does not stop it; only ``stop_reply`` does.

    Attributes:
        redis: The Redis client the streams are written with (and stop flags, leases).
        stream_redis: The Redis client readers block on (``read_reply_events``).
        sessions: Makes the database sessions the generations use.
        max_concurrent: Replies generated at once, at most.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        stream_redis: Redis,
        sessions: sessionmaker[Session],
        max_concurrent: int,
        stream_ttl: int,
    ) -> None:
        """Start the runner (its threads start on demand).

        Args:
            redis: Redis client for the streams, stop flags and leases; its pool should hold
                a connection per concurrent reply.
            stream_redis: Redis client for readers: each open stream holds one of its
                connections while it waits, so its pool should hold one per open stream, and
                its socket timeout must exceed ``READ_BLOCK_MS``.
            sessions: Session factory bound to the app's engine.
            max_concurrent: Replies generated at once, at most (LLM_MAX_CONCURRENT_REPLIES).
            stream_ttl: Seconds a finished reply's stream stays readable (REPLY_STREAM_TTL).
        """
        self.redis = redis
        self.stream_redis = stream_redis
        self.sessions = sessions
        self.max_concurrent = max_concurrent
        self._stream_ttl = stream_ttl
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="chat-reply")
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        heartbeat = threading.Thread(
            target=_refresh_leases,
            args=(weakref.ref(self), self._closed),
            name="chat-reply-leases",
            daemon=True,
        )
        heartbeat.start()
        # The thread holds the runner weakly: it ends when the runner is dropped or shut down.
        weakref.finalize(self, self._closed.set)

    def reserve(self) -> _Slot:
        """Reserve a generation slot, before anything is stored for a new reply.

        Returns:
            The slot; hand it to `submit`, or release it if the reply is not started.

        Raises:
            BusyError: If every slot is taken.
        """
        if not self._slots.acquire(blocking=False):
            raise BusyError(
                "Too many replies are being generated right now; retry in a few seconds."
            )
        return _Slot(self._slots)

    def take_lease(self, reply_id: int) -> None:
        """Mark a reply as being generated by a live process (before its row is committed)."""
        self.redis.set(_lease_key(reply_id), "1", ex=LEASE_TTL_SECONDS)

    def submit(self, slot: _Slot, bot: Bot, job: _Job) -> Future[ReplyResult | None]:
        """Generate a reply in the background.

        Args:
            slot: A slot from `reserve`; released when the generation ends.
            bot: The bot to answer with.
            job: The reply to generate.

        Returns:
            A future of the result (None if the generation broke down outside the model).
        """
        with self._lock:
            self._running.add(job.reply_id)
        try:
            return self._executor.submit(self._run, slot, bot, job)
        except BaseException:
            self._done(slot, job.reply_id)
            raise

    def running(self) -> list[int]:
        """Return the ids of the replies this process is generating."""
        with self._lock:
            return list(self._running)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking replies; with ``wait``, let the running ones finish and close Redis."""
        self._closed.set()
        self._executor.shutdown(wait=wait)
        if wait:
            self.redis.close()
            self.stream_redis.close()

    def _run(self, slot: _Slot, bot: Bot, job: _Job) -> ReplyResult | None:
        session = self.sessions()
        sink = RedisReplySink(self.redis, job.reply_id, stream_ttl=self._stream_ttl)
        try:
            store = SqlHistoryStore(session, reply_id=job.reply_id, user_id=job.user_id)
            # message.completed is queued in the transaction that stores the finished reply.
            with webhooks.reply_completion_events(
                session, reply_id=job.reply_id, user_id=job.user_id
            ):
                return bot.run(store, job.conversation_id, sink, fresh=job.fresh)
        except Exception:
            # The store or the sink broke down (database or Redis); model failures do not get
            # here, the bot stores those as failed replies itself.
            logger.exception("generating reply %s failed", job.reply_id)
            session.rollback()
            _settle_as_failed(session, job.reply_id)
            sink.fail()
            return None
        finally:
            session.close()
            self._done(slot, job.reply_id)

    def _done(self, slot: _Slot, reply_id: int) -> None:
        with self._lock:
            self._running.discard(reply_id)
        try:
            self.redis.delete(_lease_key(reply_id))
        except Exception:  # the lease expires by itself
            logger.warning("could not release the lease of reply %s", reply_id, exc_info=True)
        slot.release()


def _refresh_leases(runner_ref: weakref.ref[ReplyRunner], closed: threading.Event) -> None:
    while not closed.wait(LEASE_REFRESH_SECONDS):
        runner = runner_ref()
        if runner is None:
            return
        reply_ids = runner.running()
        redis = runner.redis
        del runner
        if not reply_ids:
            continue
        try:
            pipe = redis.pipeline(transaction=False)
            for reply_id in reply_ids:
                pipe.expire(_lease_key(reply_id), LEASE_TTL_SECONDS)
            pipe.execute()
        except Exception:
            logger.warning("refreshing reply leases failed", exc_info=True)


def _settle_as_failed(session: Session, reply_id: int) -> Message | None:
    """Mark a reply that is still ``streaming`` as failed; return the message as it now is."""
    try:
        session.execute(
            update(Message)
            .where(Message.id == reply_id, Message.status == "streaming")
            .values(status="failed")
        )
        session.commit()
        return session.get(Message, reply_id, populate_existing=True)
    except Exception:
        logger.exception("could not mark reply %s as failed", reply_id)
        session.rollback()
        return None


# --- the sink: tokens into the Redis stream ---------------------------------------------------


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
        self._stop_key = _stop_key(reply_id)
        self._stream_ttl = stream_ttl
        self._started = False
        self._stop = False
        self._stop_fresh = False

    def _add(self, pipe: Any, event: str, data: str) -> None:
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


# --- starting, stopping, finding replies --------------------------------------------------------


@dataclass(frozen=True)
class StartedReply:
    """A reply whose generation has started.

    Attributes:
        message: The user message it answers (just stored, or the one regenerated for).
        reply: The assistant message, ``status="streaming"`` for now.
        future: Completes when the generation ends.
    """

    message: Message
    reply: Message
    future: Future[ReplyResult | None]


def _lock_conversation(session: Session, *, user_id: int, conversation_id: int) -> Conversation:
    # FOR UPDATE serialises replies within one conversation: two requests cannot both find it
    # idle and start two replies.
    conversation = session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        .with_for_update()
    )
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


def _ensure_idle(session: Session, redis: Redis, conversation_id: int) -> None:
    streaming = session.scalars(
        select(Message.id).where(
            Message.conversation_id == conversation_id, Message.status == "streaming"
        )
    ).all()
    for reply_id in streaming:
        if redis.exists(_lease_key(reply_id)):
            raise ConflictError(
                "A reply is still being generated in this conversation; wait for it or stop it."
            )
        # Its process died before finishing it.
        logger.warning("reply %s was abandoned by a dead process; marking it failed", reply_id)
        session.execute(update(Message).where(Message.id == reply_id).values(status="failed"))


def _begin(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    conversation: Conversation,
    user_id: int,
    message: Message,
    fresh: bool = False,
) -> StartedReply:
    slot: _Slot | None = None
    try:
        slot = runner.reserve()
        reply = Message(
            conversation_id=conversation.id, role="assistant", content="", status="streaming"
        )
        session.add(reply)
        conversation.updated_at = utcnow()
        session.flush()
        # Before the commit: once the row is visible as streaming, its lease exists.
        runner.take_lease(reply.id)
        session.commit()
    except BaseException:
        session.rollback()
        if slot is not None:
            slot.release()
        raise
    try:
        future = runner.submit(slot, bot, _Job(reply.id, conversation.id, user_id, fresh))
    except BaseException:
        # The runner is shutting down: the reply will never come, say so.
        _settle_as_failed(session, reply.id)
        raise
    return StartedReply(message=message, reply=reply, future=future)


@contextmanager
def _redis_required() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        logger.warning("Redis is unavailable: refusing to start a reply", exc_info=True)
        raise ServiceUnavailableError(
            "Replies cannot be generated right now (the stream store is unavailable); retry"
            " shortly."
        ) from exc


def start_reply(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    conversation_id: int,
    content: str,
    quota: int,
) -> StartedReply:
    """Store a user's message and start generating the reply to it.

    The message and the reply's placeholder are committed before the model is called.

    Args:
        session: Database session; committed.
        runner: The process's reply runner.
        bot: The bot to answer with.
        user_id: The user writing; must own the conversation.
        conversation_id: The conversation.
        content: The message text, 1 to ``MESSAGE_MAX_LENGTH`` characters.
        quota: The daily token quota (0: none).

    Returns:
        The stored message, the reply being generated, and its future.

    Raises:
        ValidationError: If the content is blank or too long (400).
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated in the conversation (409).
        BusyError: If this process generates as many replies as it may (503).
        RedisError: If Redis is down (nothing is stored then).
    """
    check_text(content, "content", min_length=1, max_length=MESSAGE_MAX_LENGTH)
    conversation = _lock_conversation(session, user_id=user_id, conversation_id=conversation_id)
    with _redis_required():
        try:
            check_quota(session, user_id=user_id, quota=quota)
            _ensure_idle(session, runner.redis, conversation.id)
            message = Message(conversation_id=conversation.id, role="user", content=content)
            session.add(message)
        except BaseException:
            session.rollback()
            raise
        return _begin(
            session, runner, bot, conversation=conversation, user_id=user_id, message=message
        )


def regenerate_reply(
    session: Session,
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    conversation_id: int,
    quota: int,
) -> StartedReply:
    """Replace the conversation's last reply with a new one, to the same user message.

    The last reply (complete, stopped or failed) is deleted; its tokens still count toward the
    day's usage. The new reply is generated, never taken from the cache (it would be the same
    answer again), and replaces the cached one.

    Args:
        session: Database session; committed.
        runner: The process's reply runner.
        bot: The bot to answer with.
        user_id: The user asking; must own the conversation.
        conversation_id: The conversation.
        quota: The daily token quota (0: none).

    Returns:
        The user message answered, the reply being generated, and its future.

    Raises:
        NotFoundError: If the conversation is not the user's (404).
        QuotaExceededError: If the user's daily tokens are used up (429).
        ConflictError: If a reply is still being generated, or there is no message to answer.
        BusyError: If this process generates as many replies as it may (503).
    """
    conversation = _lock_conversation(session, user_id=user_id, conversation_id=conversation_id)
    with _redis_required():
        try:
            check_quota(session, user_id=user_id, quota=quota)
            _ensure_idle(session, runner.redis, conversation.id)
            message = session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation.id, Message.role == "user")
                .order_by(Message.id.desc())
                .limit(1)
            )
            if message is None:
                raise ConflictError("There is no message to answer in this conversation yet.")
            session.execute(
                delete(Message).where(
                    Message.conversation_id == conversation.id,
                    Message.role == "assistant",
                    Message.id > message.id,
                )
            )
        except BaseException:
            session.rollback()
            raise
        return _begin(
            session,
            runner,
            bot,
            conversation=conversation,
            user_id=user_id,
            message=message,
            fresh=True,
        )


def get_reply(session: Session, *, user_id: int, reply_id: int) -> Message:
    """Return one of the user's replies (an assistant message), as stored now.

    Args:
        session: Database session.
        user_id: The user asking.
        reply_id: The assistant message's id.

    Returns:
        The message, freshly read.

    Raises:
        NotFoundError: If there is no such reply, or it is in someone else's conversation.
    """
    reply = session.scalar(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.id == reply_id,
            Message.role == "assistant",
            Conversation.user_id == user_id,
        )
        .execution_options(populate_existing=True)
    )
    if reply is None:
        raise NotFoundError("Reply not found.")
    return reply


def stop_reply(session: Session, redis: Redis, *, user_id: int, reply_id: int) -> Message:
    """Ask the generation of one of the user's replies to stop.

    The generation, on whichever host it runs, stops after its next token, closes the model's
    stream and stores what it had with status ``stopped``; the reply's event stream then ends
    with a ``stopped`` event. Stopping a finished reply changes nothing.

    Args:
        session: Database session.
        redis: The Redis client.
        user_id: The user asking.
        reply_id: The assistant message's id.

    Returns:
        The reply as stored now (``streaming`` while the stop is on its way).

    Raises:
        NotFoundError: If there is no such reply, or it is in someone else's conversation.
    """
    reply = get_reply(session, user_id=user_id, reply_id=reply_id)
    if reply.status == "streaming":
        with _redis_required():
            redis.set(_stop_key(reply_id), "1", ex=MAX_REPLY_SECONDS)
    return reply


# --- reading a reply's events -----------------------------------------------------------------


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


def _decode(entry_id: bytes | str, fields: dict[Any, Any]) -> StreamEvent:
    raw_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    event = fields.get(b"event", fields.get("event", b""))
    data = fields.get(b"data", fields.get("data", b""))
    return StreamEvent(
        id=int(raw_id.partition("-")[2]),
        event=event.decode() if isinstance(event, bytes) else event,
        data=data.decode() if isinstance(data, bytes) else data,
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
        response = redis.xread({key: last_id}, count=_READ_COUNT, block=block)
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
        if not redis.exists(_lease_key(reply_id)):
            # Nobody is generating it: it finished before this read (and its stream expired),
            # or its process died. Entries may have arrived since the read: one more look.
            response = redis.xread({key: last_id}, count=_READ_COUNT)
            if response:
                continue
            yield _settled_event(sessions, reply_id, last_seq + 1)
            return
        if time.monotonic() - quiet_since >= keepalive_seconds:
            quiet_since = time.monotonic()
            yield None


def _settled_event(sessions: sessionmaker[Session], reply_id: int, event_id: int) -> StreamEvent:
    """Return the last event of a reply whose stream cannot tell it, from the database."""
    with sessions() as session:
        message = session.get(Message, reply_id)
        if message is not None and message.status == "streaming":
            message = _settle_as_failed(session, reply_id)
        event, data = _terminal_event(message_to_dict(message) if message is not None else None)
    return StreamEvent(event_id, event, _json(data))
