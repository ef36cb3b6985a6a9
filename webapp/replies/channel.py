"""The in-process hand-off of a reply's events: from its generation to readers in this process.

The client that posts a message usually reads the reply from the process that generates it; it
need not wait for Redis. The runner opens a :class:`ReplyChannel` per reply, the reply's sink
publishes every event to it as it numbers it (the Redis stream gets the same events under the
same ids, in batches), and the request's event stream follows it. Readers elsewhere, and
clients that reconnect after the generation ended, read the Redis stream.

Only ``threading`` primitives: gevent's monkey-patching makes them cooperative, and a waiting
reader holds no lock and burns no CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from webapp.replies.stream import KEEPALIVE_SECONDS, TERMINAL_EVENTS, StreamEvent

__all__ = ["ReplyChannel", "ReplyChannels"]


class ReplyChannel:
    """One reply's events, kept from the first for the readers that follow it in this process.

    Also carries a stop asked in this process, so that the generation sees it at its next token
    without asking Redis.
    """

    def __init__(self, reply_id: int) -> None:
        """Open the channel of ``reply_id``: no events yet."""
        self.reply_id = reply_id
        self._events: list[StreamEvent] = []
        self._closed = False
        self._stop = threading.Event()
        self._changed = threading.Condition()

    def publish(self, event: StreamEvent) -> None:
        """Hand an event to the readers (the sink numbers them 1, 2, ...)."""
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def close(self) -> None:
        """Say no event will follow (the generation ended, with or without a last event)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def request_stop(self) -> None:
        """Ask the generation to stop (it also learns a stop from Redis, from any host)."""
        self._stop.set()

    def stop_requested(self) -> bool:
        """Return whether `request_stop` was called."""
        return self._stop.is_set()

    def follow(
        self, *, keepalive_seconds: float = KEEPALIVE_SECONDS
    ) -> Iterator[StreamEvent | None]:
        """Yield every event from the first, as it is published, until the last one.

        Args:
            keepalive_seconds: How long without an event before yielding None.

        Yields:
            The events in order; None when a keepalive is due. Ends after a terminal event, or
            when the channel closes without one (the caller reads the rest from Redis).
        """
        index = 0
        while True:
            with self._changed:
                if index == len(self._events) and not self._closed:
                    self._changed.wait(keepalive_seconds)
                new = self._events[index:]
                closed = self._closed
            index += len(new)
            if not new:
                if closed:
                    return
                yield None
                continue
            for event in new:
                yield event
                if event.event in TERMINAL_EVENTS:
                    return


class ReplyChannels:
    """The channels of the replies a process generates, by reply id."""

    def __init__(self) -> None:
        """Hold no channel yet."""
        self._lock = threading.Lock()
        self._open: dict[int, ReplyChannel] = {}

    def open(self, reply_id: int) -> ReplyChannel:
        """Open and register the channel of a reply about to be generated."""
        channel = ReplyChannel(reply_id)
        with self._lock:
            self._open[reply_id] = channel
        return channel

    def get(self, reply_id: int) -> ReplyChannel | None:
        """Return the channel of a reply this process is generating, or None."""
        with self._lock:
            return self._open.get(reply_id)

    def close(self, reply_id: int) -> None:
        """Close and forget a reply's channel (its readers still read what it holds)."""
        with self._lock:
            channel = self._open.pop(reply_id, None)
        if channel is not None:
            channel.close()
