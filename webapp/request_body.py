"""Read the JSON body of the current request as an object, with errors in the shared shape.

Every JSON document a client sends is decoded by :func:`loads_json`: the views through
:func:`read_json_object`, and everything else (``request.get_json``, used by the rate limits and
the audit log) through :class:`BoundedJSONProvider`, which ``create_app`` installs.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import UnsupportedMediaType

from webapp.errors import ValidationError

__all__ = [
    "MAX_JSON_DEPTH",
    "BoundedJSONProvider",
    "JSONTooDeepError",
    "loads_json",
    "read_json_object",
]

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
