"""Server-Sent Events framing for streamed replies."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, stream_with_context

from webapp.bot import BotEvent, Done, Token
from webapp.errors import ApiError, error_body

__all__ = ["SSE_HEADERS", "format_event", "reply_event_stream"]

logger = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied responses by default; this turns it off for this response only.
    "X-Accel-Buffering": "no",
}


def format_event(event: str, data: Any, event_id: int) -> str:
    """Frame one event.

    Args:
        event: The event name.
        data: A JSON-able payload; serialised on one line, so it needs a single ``data:`` field.
        event_id: The event's id, increasing within a stream.

    Returns:
        The event, terminated by a blank line.
    """
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n"


def _reply_events(user_message: dict[str, Any], events: Iterable[BotEvent]) -> Iterator[str]:
    ids = itertools.count(1)
    yield format_event("message", user_message, next(ids))
    try:
        for event in events:
            if isinstance(event, Token):
                yield format_event("token", {"text": event.text}, next(ids))
            elif isinstance(event, Done):
                yield format_event("done", event.message, next(ids))
    except ApiError as exc:
        yield format_event("error", error_body(exc.code, exc.message, exc.field), next(ids))
    except Exception:
        # The status line (200) is long gone; the error event is the only way left to tell the
        # client, and it must not carry internals.
        logger.exception("streaming a reply failed")
        body = error_body("internal_error", "An internal error occurred.")
        yield format_event("error", body, next(ids))


def reply_event_stream(user_message: dict[str, Any], events: Iterable[BotEvent]) -> Response:
    """Build the ``text/event-stream`` response for one reply.

    Events: ``message`` (the stored user message), one ``token`` per token as the model
    produces it, then ``done`` (the stored assistant message) or ``error`` (the error shape).

    Args:
        user_message: The stored user message.
        events: The bot's events; consumed lazily while the response is sent.

    Returns:
        A streamed response; the request context stays available to ``events`` until the
        stream ends.
    """
    return Response(
        stream_with_context(_reply_events(user_message, events)),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )
