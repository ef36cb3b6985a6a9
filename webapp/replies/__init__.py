"""Replies generated independently of the HTTP request, through a Redis stream per reply.

How a reply flows:

1. :func:`~webapp.replies.service.start_reply` (POST a message) or
   :func:`~webapp.replies.service.regenerate_reply`: in one transaction, with the conversation
   locked, it checks the quota, stores the user's message and an assistant message with
   ``status="streaming"`` (the reply's id from then on), takes a lease on the reply in Redis,
   commits, then hands the reply, and the history it read, to the process's
   :class:`~webapp.replies.runner.ReplyRunner`. Usually that is one statement, one Redis
   command and the commit. Nothing has called a model yet, and everything the user sent is
   stored.
2. The runner generates in a thread of its own (at most ``LLM_MAX_CONCURRENT_REPLIES`` per
   process; beyond that new replies get 503 rather than queueing). The bot's tokens go, at
   once, to the reply's in-process channel, and in batches to the reply stream, the Redis
   stream ``chat:reply:<id>`` (``XADD``, capped length), ending with one entry ``done``,
   ``stopped`` or ``error``; then the stream expires after ``REPLY_STREAM_TTL`` seconds. The
   assistant message is completed in place (content, status, model, tokens, latency, cached,
   fallback) before that last entry is written.
3. :func:`~webapp.replies.stream.read_reply_events` serves any client: from the channel when
   the reply is generated in the same process, else from the stream, on any host and worker
   (``XREAD BLOCK``), starting after the event id it last saw (``Last-Event-ID``): event ids
   are the entries' sequence numbers, the same in the channel, so a client that reconnects
   anywhere gets the rest exactly once.
4. :func:`~webapp.replies.service.stop_reply` sets ``chat:reply:<id>:stop`` (and tells the
   channel, when the reply is generated in the same process); the generation sees it after
   its next token (channel) or its next batch written to the stream (Redis is asked in the
   same round trip), closes the model's stream (the model server sees the connection close)
   and stores what it had as ``stopped``.

A generation whose process died (killed during a deploy) leaves a ``streaming`` message behind.
Its lease, refreshed every few seconds by the live process, then expires: readers, and the next
message posted to the conversation, settle it as ``failed``.

The modules, one job each: :mod:`~webapp.replies.keys` (the Redis keys of a reply and their
lifetimes), :mod:`~webapp.replies.failed` (settling a reply that will not complete),
:mod:`~webapp.replies.stream` (writing and reading the reply stream),
:mod:`~webapp.replies.channel` (handing the events to readers in the same process),
:mod:`~webapp.replies.runner` (the worker pool) and :mod:`~webapp.replies.service` (the
database transactions that start, stop and find replies). Nothing here knows Flask's request.
"""
