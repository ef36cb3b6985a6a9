"""Browser sessions: tokens in HttpOnly cookies, CSRF protection on unsafe methods."""

from __future__ import annotations

import pytest

from tests.assertions import assert_error
from tests.integration.auth_support import (
    ACCESS_COOKIE,
    ACCESS_CSRF_COOKIE,
    CONVERSATIONS,
    LOGOUT,
    ME,
    PASSWORD,
    REFRESH,
    REFRESH_COOKIE,
    REFRESH_CSRF_COOKIE,
    SESSION,
    STATS,
    browser_login,
    claims,
    copy_cookie,
)
from tests.integration.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration


def _set_cookies(response) -> dict[str, str]:
    """Map each Set-Cookie of a response to its full header value."""
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def test_session_login_sets_hardened_cookies_and_returns_no_token(auth, client):
    auth.register()
    response = client.post(
        SESSION, json={"email": "alice@example.com", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"user", "csrf", "expires_in"}
    assert body["user"]["email"] == "alice@example.com"
    assert body["csrf"]["header"] == "X-CSRF-TOKEN"
    cookies = _set_cookies(response)
    assert set(cookies) == {ACCESS_COOKIE, REFRESH_COOKIE, ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE}
    for header in cookies.values():
        assert "Secure" in header
        assert "SameSite=Strict" in header
    assert "HttpOnly" in cookies[ACCESS_COOKIE]
    assert "HttpOnly" in cookies[REFRESH_COOKIE]
    # The page must read the CSRF tokens, and nothing else.
    assert "HttpOnly" not in cookies[ACCESS_CSRF_COOKIE]
    assert "HttpOnly" not in cookies[REFRESH_CSRF_COOKIE]
    # The access cookie reaches chat and admin (other prefixes); the refresh cookie only auth.
    assert "Path=/;" in cookies[ACCESS_COOKIE] + ";"
    assert "Path=/api/v1/auth/" in cookies[REFRESH_COOKIE]
    assert "Max-Age=900" in cookies[ACCESS_COOKIE]
    assert f"Max-Age={7 * 86400}" in cookies[REFRESH_COOKIE]
    # The CSRF tokens handed out are those bound into the cookie tokens.
    access = client.get_cookie(ACCESS_COOKIE).value
    assert body["csrf"]["access"] == claims(access)["csrf"]
    assert "eyJ" not in response.get_data(as_text=True)  # no JWT in the body


def test_session_login_with_bad_credentials_sets_no_cookie(auth, client):
    auth.register()
    response = client.post(SESSION, json={"email": "alice@example.com", "password": "wrong one 1"})
    assert_error(response, 401, "unauthorized")
    assert "Set-Cookie" not in response.headers


def test_cookie_works_for_safe_requests_without_a_csrf_token(auth, client):
    auth.register()
    browser_login(client)
    assert client.get(ME).status_code == 200


@pytest.mark.parametrize("service", ["chat", "all"])
def test_unsafe_cookie_request_without_the_csrf_token_is_refused(auth, client, make_app, service):
    auth.register()
    session = browser_login(client)
    target = client if service == "all" else make_app(service).test_client()
    copy_cookie(session, target)

    error = assert_error(target.post(CONVERSATIONS, json={}), 403, "csrf_failed")
    assert "X-CSRF-TOKEN" in error["message"]
    wrong = target.post(CONVERSATIONS, json={}, headers={"X-CSRF-TOKEN": "not-the-token"})
    assert_error(wrong, 403, "csrf_failed")
    # The refresh CSRF token is a different one, not accepted for the access cookie.
    other = target.post(CONVERSATIONS, json={}, headers=session.refresh_csrf)
    assert_error(other, 403, "csrf_failed")

    assert target.post(CONVERSATIONS, json={}, headers=session.csrf).status_code == 201


def test_admin_service_takes_the_cookie_and_checks_csrf(auth, client, make_app):
    auth.admin()
    alice = auth.signup("alice@example.com")
    session = browser_login(client, "root@example.com")
    admin_client = make_app("admin").test_client()
    copy_cookie(session, admin_client)

    assert admin_client.get(STATS).status_code == 200
    disable = f"/api/v1/admin/users/{alice.user['id']}/disable"
    assert_error(admin_client.post(disable), 403, "csrf_failed")
    assert admin_client.post(disable, headers=session.csrf).status_code == 200


def test_bearer_clients_need_no_csrf_token(auth, client):
    tokens = auth.signup()
    response = client.post(CONVERSATIONS, json={}, headers=tokens.headers)
    assert response.status_code == 201


def test_refresh_by_cookie_rotates_the_cookies(auth, client):
    auth.register()
    session = browser_login(client)
    old_refresh, old_csrf = session.cookie(REFRESH_COOKIE), session.refresh_csrf

    assert_error(client.post(REFRESH), 403, "csrf_failed")
    response = client.post(REFRESH, headers=session.refresh_csrf)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"user", "csrf", "expires_in"}
    assert session.cookie(REFRESH_COOKIE) != old_refresh
    assert client.get(ME).status_code == 200
    # The spent refresh cookie, replayed, is refused (and ends the session).
    client.set_cookie(REFRESH_COOKIE, old_refresh, path="/api/v1/auth/")
    assert_error(client.post(REFRESH, headers=old_csrf), 401, "unauthorized")


def test_delete_session_revokes_the_tokens_and_clears_the_cookies(auth, client, make_app):
    auth.register()
    session = browser_login(client)
    access = session.cookie(ACCESS_COOKIE)
    chat = make_app("chat").test_client()
    copy_cookie(session, chat)
    assert chat.get(CONVERSATIONS).status_code == 200

    assert_error(client.delete(SESSION), 403, "csrf_failed")
    response = client.delete(SESSION, headers=session.refresh_csrf)

    assert response.status_code == 204
    for name in (ACCESS_COOKIE, REFRESH_COOKIE, ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE):
        assert session.cookie(name) is None, name
    # A copy of the old cookie is dead for every service.
    assert_error(chat.get(CONVERSATIONS), 401, "unauthorized")
    client.set_cookie(ACCESS_COOKIE, access, path="/")
    assert_error(client.get(ME), 401, "unauthorized")


def test_delete_session_needs_the_refresh_cookie(auth, client):
    assert_error(client.delete(SESSION), 401, "unauthorized")


def test_logout_by_cookie_clears_the_cookies(auth, client):
    auth.register()
    session = browser_login(client)
    assert_error(client.post(LOGOUT), 403, "csrf_failed")
    assert client.post(LOGOUT, headers=session.csrf).status_code == 204
    assert session.cookie(ACCESS_COOKIE) is None
    assert_error(client.get(ME), 401, "unauthorized")


def test_password_change_by_cookie_renews_the_cookies(auth, client):
    auth.register()
    other = auth.tokens()
    session = browser_login(client)
    old_access = session.cookie(ACCESS_COOKIE)
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "another good password 3"}

    assert_error(client.post(PASSWORD, json=body), 403, "csrf_failed")
    response = client.post(PASSWORD, json=body, headers=session.csrf)

    assert response.status_code == 200
    assert "access_token" not in response.get_json()
    assert session.cookie(ACCESS_COOKIE) != old_access
    assert client.get(ME).status_code == 200
    assert_error(
        client.get(ME, headers={"Authorization": f"Bearer {other.access}"}), 401, "unauthorized"
    )
