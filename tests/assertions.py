"""The app's JSON error responses: assertions on them, and request bodies that must cause them.

Shared by the unit and integration tests.
"""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse


def assert_error(response: TestResponse, status: int, code: str, field: str | None = None) -> dict:
    """Assert an error response in the shared shape and return its ``error`` member."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    return error


def assert_names_field(response: TestResponse, field: str) -> None:
    """Assert a 400 that names ``field``, the query parameter or body member at fault."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == field


def bad_text_bodies(
    field: str, max_length: int, blank: str = "   "
) -> list[tuple[dict[str, Any], str]]:
    """Return bodies a required text member refuses, each with the member named in the error.

    Missing, null, empty, blank, not a string, and one character longer than ``max_length``.
    """
    values: list[Any] = [None, "", blank, 7, "x" * (max_length + 1)]
    return [({}, field), *(({field: value}, field) for value in values)]
