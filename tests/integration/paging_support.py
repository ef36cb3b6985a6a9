"""Following a list endpoint's keyset pages (``next_cursor``) to the end."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def all_pages(
    client: FlaskClient, url: str, headers: dict[str, str], key: str, **params: Any
) -> list[list[dict[str, Any]]]:
    """Follow ``next_cursor`` from the first page to the last; return each page's ``key`` items."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"
