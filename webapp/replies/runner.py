"""The reply runner: a bounded pool of threads that generate replies in the background.

One runner per process (built by ``webapp.chat.runtime``). A generation does not depend on any
HTTP connection: a client that goes away does not stop it; only a stop request does. While a
reply is generated its lease in Redis is refreshed, so readers and later requests can tell a
live generation from one whose process died.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from langchain_core.messages import BaseMessage
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from webapp.bot import Bot, ModelSelection, ReplyResult
from webapp.errors import ServiceUnavailableError
from webapp.replies.channel import ReplyChannel, ReplyChannels
from webapp.replies.failed import settle_as_failed
from webapp.replies.keys import LEASE_REFRESH_SECONDS, LEASE_TTL_SECONDS, lease_key
from webapp.replies.stream import RedisReplySink, StreamFlusher
from webapp.services.chat import SqlHistoryStore

__all__ = ["BusyError", "Generation", "ReplyJob", "ReplyRunner", "ReplySlot"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class BusyError(ServiceUnavailableError):
    """Raised when this process already generates as many replies as it may."""

    retry_after = 2


@dataclass(frozen=True)
class ReplyJob:
    """One reply to generate.

    Attributes:
        reply_id: The assistant message, stored as ``streaming``.
        conversation_id: Its conversation.
        user_id: The conversation's owner.
        fresh: Generate even if the reply cache has an answer (regenerating).
        history: The history to answer, read when the reply was started (with the
            conversation locked); None reads it in the generation's own session.
        selection: The models to answer with (chosen from the catalogue when the reply was
            started); None: the bot's own.
    """

    reply_id: int
    conversation_id: int
    user_id: int
    fresh: bool = False
    history: tuple[BaseMessage, ...] | None = None
    selection: ModelSelection | None = None


@dataclass(frozen=True)
class Generation:
    """A reply being generated in this process.

    Attributes:
        future: Completes when the generation ends.
        events: Its events, for readers in this process.
    """

    future: Future[ReplyResult | None]
    events: ReplyChannel


class ReplySlot:
    """A reserved generation slot; released once, by the job or on failure before it."""

    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        """Hold one unit of ``semaphore`` (already acquired) until `release`."""
        self._semaphore = semaphore
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the slot back (only the first call does)."""
        with self._lock:
            if not self._released:
                self._released = True
                self._semaphore.release()


class ReplyRunner:
    """Generate replies in background threads of this process, bounded in number.

    Attributes:
        redis: The Redis client the streams are written with (and stop flags, leases).
        stream_redis: The Redis client readers block on (``read_reply_events``).
        sessions: Makes the database sessions the generations use.
        max_concurrent: Replies generated at once, at most.
        channels: The events of the replies being generated, for readers in this process.
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
        self.channels = ReplyChannels()
        self._flusher = StreamFlusher()
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

    def reserve(self) -> ReplySlot:
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
        return ReplySlot(self._slots)

    def take_lease(self, reply_id: int) -> None:
        """Mark a reply as being generated by a live process (before its row is committed)."""
        self.redis.set(lease_key(reply_id), "1", ex=LEASE_TTL_SECONDS)

    def submit(self, slot: ReplySlot, bot: Bot, job: ReplyJob) -> Generation:
        """Generate a reply in the background.

        Args:
            slot: A slot from `reserve`; released when the generation ends.
            bot: The bot to answer with.
            job: The reply to generate.

        Returns:
            A future of the result (None if the generation broke down outside the model), and
            the channel of the reply's events.
        """
        channel = self.channels.open(job.reply_id)
        with self._lock:
            self._running.add(job.reply_id)
        try:
            future = self._executor.submit(self._run, slot, bot, job, channel)
        except BaseException:
            self._done(slot, job.reply_id)
            raise
        return Generation(future, channel)

    def submit_task(self, slot: ReplySlot, task: Callable[[], _T]) -> Future[_T]:
        """Run a generation that is no stored reply (an unstored ``/v1`` completion) in a slot.

        It shares the bound of `LLM_MAX_CONCURRENT_REPLIES` and the threads with the stored
        replies; it takes no lease and has no channel (its caller reads its own sink).

        Args:
            slot: A slot from `reserve`; released when the task ends.
            task: Runs the bot; whatever it raises is the future's exception.

        Returns:
            The task's future.
        """

        def run() -> _T:
            try:
                return task()
            finally:
                slot.release()

        try:
            return self._executor.submit(run)
        except BaseException:
            slot.release()
            raise

    def running(self) -> list[int]:
        """Return the ids of the replies this process is generating."""
        with self._lock:
            return list(self._running)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking replies; with ``wait``, let the running ones finish and close Redis."""
        self._closed.set()
        self._executor.shutdown(wait=wait)
        self._flusher.close()
        if wait:
            self.redis.close()
            self.stream_redis.close()

    def _run(
        self, slot: ReplySlot, bot: Bot, job: ReplyJob, channel: ReplyChannel
    ) -> ReplyResult | None:
        # The session connects on first use: with the history handed over, when the reply is
        # stored.
        session = self.sessions()
        sink = RedisReplySink(
            self.redis,
            job.reply_id,
            stream_ttl=self._stream_ttl,
            channel=channel,
            flusher=self._flusher,
        )
        try:
            # message.completed is queued in the transaction that stores the finished reply.
            store = SqlHistoryStore(
                session,
                reply_id=job.reply_id,
                user_id=job.user_id,
                history=job.history,
                queue_completed=True,
            )
            return bot.run(
                store, job.conversation_id, sink, fresh=job.fresh, selection=job.selection
            )
        except Exception:
            # The store or the sink broke down (database or Redis); model failures do not get
            # here, the bot stores those as failed replies itself.
            logger.exception("generating reply %s failed", job.reply_id)
            session.rollback()
            settle_as_failed(session, job.reply_id)
            sink.fail()
            return None
        finally:
            session.close()
            self._done(slot, job.reply_id, lease_released=sink.ended)

    def _done(self, slot: ReplySlot, reply_id: int, *, lease_released: bool = False) -> None:
        with self._lock:
            self._running.discard(reply_id)
        self.channels.close(reply_id)
        if not lease_released:
            try:
                self.redis.delete(lease_key(reply_id))
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
                pipe.expire(lease_key(reply_id), LEASE_TTL_SECONDS)
            pipe.execute()
        except Exception:
            logger.warning("refreshing reply leases failed", exc_info=True)
