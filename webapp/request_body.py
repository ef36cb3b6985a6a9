"""Request bodies: read the JSON body as an object (errors in the shared shape), and drain what
the app did not read so the connection survives a refusal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from webapp.errors import ValidationError

__all__ = ["UNREAD_BODY_DRAIN_LIMIT", "UnreadBodyDrain", "read_json_object"]

# Bytes of a request body the app did not read that are read and dropped after the response is
# made (see UnreadBodyDrain). Above the proxy's largest accepted body (nginx_client_max_body_size,
# 1 MiB by default) so every body nginx passes on is drained; larger declared bodies only reach
# an app server directly, and gunicorn closes such a connection.
UNREAD_BODY_DRAIN_LIMIT = 8 * 1024 * 1024
_DRAIN_CHUNK = 64 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_json_object(*, allow_empty: bool = False) -> dict[str, Any]:
    """Return the request body decoded as a JSON object.

    Args:
        allow_empty: Accept a request without a body (any content type) as ``{}``, for
            endpoints whose fields are all optional.

    Returns:
        The decoded object.

    Raises:
        UnsupportedMediaType: If the body is not declared as JSON (415).
        RequestEntityTooLarge: If the body exceeds ``MAX_CONTENT_LENGTH`` (413).
        ValidationError: If the body is not valid JSON or not an object.
    """
    # Reading the data first enforces MAX_CONTENT_LENGTH before anything else is looked at.
    raw = request.get_data(cache=True)
    if allow_empty and not raw:
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("Request body must be JSON (Content-Type: application/json).")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad syntax and bad encodings; RecursionError very deep nesting.
        raise ValidationError("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ValidationError("Request body must be a JSON object.")
    return data


class _CountingInput:
    """A ``wsgi.input`` that counts the bytes the app read from it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._stream.readline() if size is None or size < 0 else self._stream.readline(size)
        self.consumed += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self._stream.readlines(hint)
        self.consumed += sum(len(line) for line in lines)
        return lines

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class UnreadBodyDrain:
    """WSGI middleware: read and drop the part of a request body the app left unread.

    A request refused before its body is read (413 on ``Content-Length``, 401, 404, 429) leaves
    the body on the connection. gunicorn drains at most 64 KiB of it, then closes the connection
    with the rest unread, and the kernel answers the proxy with a reset: nginx, still sending the
    body or not yet having read the response, reports "upstream prematurely closed connection"
    and the client gets 502 instead of the app's answer. Draining the body (up to
    ``UNREAD_BODY_DRAIN_LIMIT``, as declared by ``Content-Length``) before the response goes out
    keeps the connection whole, so the client always gets the app's response.
    """

    def __init__(self, app: WsgiApp, *, limit: int = UNREAD_BODY_DRAIN_LIMIT) -> None:
        """Wrap ``app``; drain at most ``limit`` bytes of a declared body."""
        self._app = app
        self._limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Run the app, then drain the declared body's unread remainder."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0 or length > self._limit or "wsgi.input" not in environ:
            return self._app(environ, start_response)
        counting = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counting
        result = self._app(environ, start_response)
        remaining = length - counting.consumed
        while remaining > 0:
            chunk = counting.read(min(_DRAIN_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
        return result
