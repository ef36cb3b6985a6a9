"""Errors: a browser asking for a page gets an HTML page; API clients always get JSON."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_missing_page_is_an_html_page_for_a_browser(client):
    response = client.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "404 Not Found" in response.get_data(as_text=True)


def test_a_missing_api_route_is_json_even_for_a_browser(client):
    response = client.get("/api/v1/chat/no-such-route", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_a_client_without_a_preference_gets_json(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
