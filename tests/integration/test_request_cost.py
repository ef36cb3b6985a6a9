"""What an authenticated request costs in statements and token decodes: each done once.

Every authenticated request checks its token's ``token_version`` against the user row and then
serves the view with that same row, and the rate limiter reads the token's subject before the
view decodes it: one ``SELECT ... FROM users`` and one decode, whichever service and however the
token came (bearer header or cookie with its CSRF header).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask, request, request_finished
from sqlalchemy import event

from tests.integration.auth_support import CONVERSATIONS, ME, STATS, browser_login
from webapp.extensions import db

# A load of user rows (SELECT users.id, users.email, ... FROM users), not a count over them.
_SELECT_USERS = re.compile(r"\s*SELECT users\.id\b.*\bFROM users\b", re.S)
# Where webapp.extensions.RequestJWTManager keeps the request's decoded tokens.
_DECODED_TOKENS = "webapp.decoded_tokens"


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Collect the SQL statements ``app`` sends meanwhile."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def user_selects(sent: list[str]) -> list[str]:
    return [statement for statement in sent if _SELECT_USERS.match(statement)]


@contextmanager
def decodes(app: Flask) -> Iterator[list[int]]:
    """Collect, per request ``app`` finishes meanwhile, how many tokens it decoded."""
    counts: list[int] = []

    def record(_sender: Flask, **_extra: object) -> None:
        counts.append(len(request.environ.get(_DECODED_TOKENS, {})))

    request_finished.connect(record, app)
    try:
        yield counts
    finally:
        request_finished.disconnect(record, app)


@pytest.mark.parametrize("path", [CONVERSATIONS, ME])
def test_a_bearer_request_selects_its_user_once_and_decodes_its_token_once(app, client, auth, path):
    tokens = auth.signup()
    with statements(app) as sent, decodes(app) as decoded:
        response = client.get(path, headers=tokens.headers)
    assert response.status_code == 200, response.get_json()
    assert len(user_selects(sent)) == 1, sent
    assert decoded == [1]


def test_an_admin_request_selects_its_user_once(app, client, auth):
    tokens = auth.admin()
    with statements(app) as sent:
        response = client.get(STATS, headers=tokens.headers)
    assert response.status_code == 200, response.get_json()
    assert len(user_selects(sent)) == 1, sent


def test_a_cookie_request_with_csrf_selects_its_user_once_and_decodes_its_token_once(
    app, client, auth
):
    auth.register()
    browser = browser_login(client)
    with statements(app) as sent, decodes(app) as decoded:
        response = client.post(CONVERSATIONS, json={}, headers=browser.csrf)
    assert response.status_code == 201, response.get_json()
    assert len(user_selects(sent)) == 1, sent
    assert decoded == [1]


def test_a_wrong_csrf_value_is_still_refused(client, auth):
    # The limiter decodes the cookie's token with the CSRF header before the view does: a
    # decode it kept must not let the view skip the CSRF check.
    auth.register()
    browser_login(client)
    response = client.post(CONVERSATIONS, json={}, headers={"X-CSRF-TOKEN": "wrong"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "csrf_failed"
