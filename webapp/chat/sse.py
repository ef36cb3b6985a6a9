"""Server-Sent Events framing for streamed replies."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response

from webapp.errors import error_body
from webapp.replies.stream import StreamEvent

__all__ = ["KEEPALIVE", "SSE_HEADERS", "event_stream_response", "format_event", "json_data"]

logger = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied responses by default; this turns it off for this response only.
    "X-Accel-Buffering": "no",
}
KEEPALIVE = ": keepalive\n\n"
"""An SSE comment: clients ignore it; it keeps proxies from closing an idle stream and lets the
server notice a client that left."""


def format_event(event: str, data: str, event_id: int | None) -> str:
    """Frame one event.

    Args:
        event: The event name.
        data: The payload as one line of JSON, so it needs a single ``data:`` field.
        event_id: The event's id (increasing within a reply); None for an event a client must
            not resume from.

    Returns:
        The event, terminated by a blank line.
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def json_data(data: Any) -> str:
    """Serialise an event's data on one line."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _frames(events: Iterable[StreamEvent | None]) -> Iterator[str]:
    try:
        for event in events:
            if event is None:
                yield KEEPALIVE
            else:
                yield format_event(event.event, event.data, event.id)
    except Exception:
        # The status line (200) is long gone; an error event is the only way left to tell the
        # client, and it must not carry internals. It has no id, so a client that reconnects
        # with Last-Event-ID resumes where it was: the reply itself may well be fine.
        logger.exception("streaming reply events failed")
        body = error_body(
            "stream_interrupted",
            "The reply stream was interrupted; reconnect with Last-Event-ID to resume.",
        )
        yield format_event("error", json_data(body), None)


def event_stream_response(
    events: Iterable[StreamEvent | None], *, headers: dict[str, str] | None = None
) -> Response:
    """Build the ``text/event-stream`` response for a reply's events.

    Args:
        events: The events (None: a keepalive is due); consumed lazily while the response is
            sent. They need no request context.
        headers: More response headers.

    Returns:
        A streamed response.
    """
    return Response(
        _frames(events),
        mimetype="text/event-stream",
        headers={**SSE_HEADERS, **(headers or {})},
    )
