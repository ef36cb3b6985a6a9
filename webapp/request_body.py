"""Request bodies: read the JSON body as an object (errors in the shared shape), and drain what
the app did not read so the connection survives a refusal.

Every JSON document a client sends is decoded by :func:`loads_json`: the views through
:func:`read_json_object`, and everything else (``request.get_json``, used by the rate limits and
the audit log) through :class:`BoundedJSONProvider`, which ``create_app`` installs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import UnsupportedMediaType

from webapp.errors import ValidationError

__all__ = [
    "MAX_JSON_DEPTH",
    "UNREAD_BODY_DRAIN_LIMIT",
    "BoundedJSONProvider",
    "JSONTooDeepError",
    "UnreadBodyDrain",
    "loads_json",
    "read_json_object",
]

# Bytes of a request body the app did not read that are read and dropped after the response is
# made (see UnreadBodyDrain). Above the proxy's largest accepted body (nginx_client_max_body_size,
# 1 MiB by default) so every body nginx passes on is drained; larger declared bodies only reach
# an app server directly, and gunicorn closes such a connection.
UNREAD_BODY_DRAIN_LIMIT = 8 * 1024 * 1024
_DRAIN_CHUNK = 64 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Deepest nesting of arrays and objects accepted; the deepest legitimate body (a webhook's
# list of events) has two levels. The json module recurses once per level: unchecked, a
# document of a few kilobytes could exhaust the interpreter's recursion limit.
MAX_JSON_DEPTH = 32
# A JSON string, escapes included (unrolled, so matching takes no backtracking).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JSONTooDeepError(ValueError):
    """Raised when a JSON document nests arrays and objects deeper than ``MAX_JSON_DEPTH``."""


def _nesting_depth(text: str) -> int:
    # Only brackets outside strings count; "[[[" inside a password is just text.
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def loads_json(data: str | bytes) -> Any:
    """Decode a JSON document from a client, refusing one nested deeper than ``MAX_JSON_DEPTH``.

    Args:
        data: The document; bytes in UTF-8, UTF-16 or UTF-32, as ``json.loads`` accepts.

    Returns:
        The decoded value.

    Raises:
        JSONTooDeepError: If the document is nested too deeply (before it is decoded).
        ValueError: If it is not valid JSON or not validly encoded.
    """
    text = (
        data.decode(json.detect_encoding(data), "surrogatepass")
        if isinstance(data, bytes)
        else data
    )
    # Counting brackets is cheap; the full scan runs only when there are enough to matter.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _nesting_depth(text) > MAX_JSON_DEPTH:
        raise JSONTooDeepError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, decoding with :func:`loads_json`.

    ``request.get_json`` turns the ValueError of a document nested too deeply into a 400 (or
    None when ``silent``), as for any invalid JSON, instead of a RecursionError and a 500.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Decode ``s`` with :func:`loads_json` (no options: this app never passes any)."""
        return loads_json(s)


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
        ValidationError: If the body is not valid JSON, nested too deeply or not an object.
    """
    # Reading the data first enforces MAX_CONTENT_LENGTH before anything else is looked at.
    raw = request.get_data(cache=True)
    if allow_empty and not raw:
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("Request body must be JSON (Content-Type: application/json).")
    try:
        data = loads_json(raw)
    except JSONTooDeepError:
        raise ValidationError(
            f"Request body is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays"
            " and objects."
        ) from None
    except ValueError:
        # Bad syntax and bad encodings (UnicodeDecodeError is a ValueError).
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
        data: bytes = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data: bytes = (
            self._stream.readline() if size is None or size < 0 else self._stream.readline(size)
        )
        self.consumed += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(hint)
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
