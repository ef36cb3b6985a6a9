"""Read the JSON body of the current request as an object, with errors in the shared shape."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from webapp.errors import ValidationError

__all__ = ["read_json_object"]


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
