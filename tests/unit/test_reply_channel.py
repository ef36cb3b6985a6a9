"""The in-process hand-off of a reply's events, between real threads."""

from __future__ import annotations

import threading

from webapp.replies.channel import ReplyChannel, ReplyChannels
from webapp.replies.stream import StreamEvent


def _events(count: int) -> list[StreamEvent]:
    tokens = [StreamEvent(i, "token", f'{{"text":"{i}"}}') for i in range(1, count + 1)]
    return [*tokens, StreamEvent(count + 1, "done", "{}")]


def test_followers_in_other_threads_get_every_event_in_order_until_the_last():
    channel = ReplyChannel(7)
    expected = _events(500)
    received: list[list[StreamEvent | None]] = [[], []]
    following = threading.Barrier(3)

    def follow(into: list[StreamEvent | None]) -> None:
        events = channel.follow(keepalive_seconds=60)
        following.wait()
        into.extend(events)

    readers = [threading.Thread(target=follow, args=(into,)) for into in received]
    for reader in readers:
        reader.start()
    following.wait()
    for item in expected:
        channel.publish(item)
    for reader in readers:
        reader.join()

    assert received == [expected, expected]


def test_a_late_follower_gets_the_whole_reply_and_a_closed_channel_ends_its_followers():
    channel = ReplyChannel(7)
    for item in _events(3)[:-1]:
        channel.publish(item)
    channel.close()

    # No last event: the follower ends after what there is (the caller turns to Redis).
    assert list(channel.follow()) == _events(3)[:-1]


def test_a_quiet_channel_yields_keepalives():
    channel = ReplyChannel(7)
    events = channel.follow(keepalive_seconds=0.01)
    assert next(events) is None
    channel.publish(StreamEvent(1, "done", "{}"))
    assert list(events) == [StreamEvent(1, "done", "{}")]


def test_the_registry_forgets_a_closed_reply_and_a_stop_reaches_its_channel():
    channels = ReplyChannels()
    channel = channels.open(3)
    assert channels.get(3) is channel
    assert not channel.stop_requested()
    channel.request_stop()
    assert channel.stop_requested()

    channels.close(3)

    assert channels.get(3) is None
    assert list(channel.follow()) == []
