"""Tokens: what every service refuses, refresh rotation, and revocation honoured everywhere.

Each check runs against the three single-service apps (as deployed, one process each) and the
"all" app, all sharing the test database and Redis, so "revoked" means revoked by all of them.
"""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient

from tests.assertions import assert_error
from tests.integration.auth_support import (
    CONVERSATIONS,
    LOGOUT,
    ME,
    PASSWORD,
    REFRESH,
    STATS,
    b64,
    claims,
    resign,
)
from tests.integration.conftest import DEFAULT_PASSWORD, Tokens, bearer
from webapp.extensions import REDIS_EXTENSION
from webapp.security import session_store
from webapp.services.sessions import RefreshTokenReusedError

pytestmark = pytest.mark.integration

ENDPOINTS = {"auth": ME, "chat": CONVERSATIONS, "admin": STATS}
NEW_PASSWORD = "a brand new password 2"


@pytest.fixture
def clients(client, make_app) -> dict[str, FlaskClient]:
    """A client per service app, plus the "all" app's client."""
    return {service: make_app(service).test_client() for service in ENDPOINTS} | {"all": client}


def statuses(clients: dict[str, FlaskClient], token: str) -> dict[str, int]:
    """GET each service's endpoint with ``token``, from its own app and from the "all" app."""
    result = {}
    for service, url in ENDPOINTS.items():
        result[service] = clients[service].get(url, headers=bearer(token)).status_code
        result[f"all{url}"] = clients["all"].get(url, headers=bearer(token)).status_code
    return result


def everywhere(status: int) -> dict[str, int]:
    """The result of :func:`statuses` when every app answers ``status``."""
    return {key: status for service, url in ENDPOINTS.items() for key in (service, f"all{url}")}


@pytest.fixture
def admin(auth) -> Tokens:
    """An admin's tokens: valid ones open all three services' endpoints."""
    return auth.admin()


def refresh(client: FlaskClient, token: str):
    return client.post(REFRESH, headers=bearer(token))


# --- what no service accepts ----------------------------------------------------------------


def test_a_valid_access_token_opens_every_service(clients, admin):
    # The positive control for every rejection below.
    assert statuses(clients, admin.access) == everywhere(200)


def test_forged_signature_is_rejected_everywhere(clients, admin):
    forged = pyjwt.encode(claims(admin.access), "another-key-" * 4, algorithm="HS256")
    assert statuses(clients, forged) == everywhere(401)


def test_alg_none_is_rejected_everywhere(clients, admin):
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(admin.access))}."
    assert statuses(clients, unsigned) == everywhere(401)


def test_another_algorithm_with_the_right_key_is_rejected(app, clients, admin):
    token = pyjwt.encode(claims(admin.access), app.config["JWT_SECRET_KEY"], algorithm="HS512")
    assert statuses(clients, token) == everywhere(401)


def test_expired_access_token_is_rejected_everywhere(app, clients, admin):
    # Re-signed with the real key, so only the expiry differs from a working token.
    assert statuses(clients, resign(app, admin.access, exp=int(time.time()) + 60)) == everywhere(
        200
    )
    expired = resign(app, admin.access, exp=int(time.time()) - 1)
    assert statuses(clients, expired) == everywhere(401)
    error = assert_error(
        clients["chat"].get(CONVERSATIONS, headers=bearer(expired)), 401, "unauthorized"
    )
    assert "expired" in error["message"]


def test_expired_refresh_token_is_rejected(app, client, admin):
    expired = resign(app, admin.refresh, exp=int(time.time()) - 1)
    error = assert_error(refresh(client, expired), 401, "unauthorized")
    assert "expired" in error["message"]


@pytest.mark.parametrize("claim", ["sid", "ver"])
def test_token_without_session_or_version_is_rejected(app, clients, admin, claim):
    # Tokens from before sessions existed, or hand-made ones: refused, not grandfathered.
    assert statuses(clients, resign(app, admin.access, drop=(claim,))) == everywhere(401)


def test_refresh_token_is_rejected_as_an_access_token_everywhere(clients, admin):
    assert statuses(clients, admin.refresh) == everywhere(401)


def test_access_token_is_rejected_at_refresh(client, admin):
    assert_error(refresh(client, admin.access), 401, "unauthorized")


# --- rotation -------------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(client, auth):
    tokens = auth.signup()
    response = refresh(client, tokens.refresh)

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    new_access, new_refresh = claims(body["access_token"]), claims(body["refresh_token"])
    assert (new_access["type"], new_refresh["type"]) == ("access", "refresh")
    assert new_refresh["jti"] != claims(tokens.refresh)["jti"]
    # Same session: logging out later ends all of them.
    assert new_access["sid"] == new_refresh["sid"] == claims(tokens.refresh)["sid"]
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200

    assert refresh(client, body["refresh_token"]).status_code == 200
    error = assert_error(refresh(client, tokens.refresh), 401, "unauthorized")
    assert "revoked" in error["message"]


def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(clients, client, auth):
    stolen = auth.admin()
    other_session = auth.tokens("root@example.com")
    rotated = refresh(client, stolen.refresh).get_json()
    assert statuses(clients, rotated["access_token"]) == everywhere(200)

    assert_error(refresh(client, stolen.refresh), 401, "unauthorized")

    # Whoever holds the newer tokens (the thief or the user) is out too.
    assert statuses(clients, rotated["access_token"]) == everywhere(401)
    assert_error(refresh(client, rotated["refresh_token"]), 401, "unauthorized")
    # Other sessions of the same user are untouched.
    assert statuses(clients, other_session.access) == everywhere(200)


def test_a_refresh_token_exchanged_twice_at_once_counts_as_reuse(app, auth):
    # Both requests passed the denylist check; the atomic rotation lets only one through.
    tokens = auth.signup()
    with app.app_context():
        store = session_store()
        token_claims = claims(tokens.refresh)
        store.rotate(token_claims)
        with pytest.raises(RefreshTokenReusedError):
            store.rotate(token_claims)
        assert store.is_revoked(claims(tokens.access))


def test_a_spent_refresh_token_is_remembered_until_it_would_expire(app, client, auth):
    tokens = auth.signup()
    refresh(client, tokens.refresh)
    redis = app.extensions[REDIS_EXTENSION]
    [key] = redis.keys("auth:revoked:token:*")
    remaining = claims(tokens.refresh)["exp"] - time.time()
    assert remaining - 5 <= redis.ttl(key) <= remaining + 1


# --- logout ---------------------------------------------------------------------------------


def test_logout_revokes_the_access_and_the_refresh_token_everywhere(app, clients, client, auth):
    admin = auth.admin()
    other_session = auth.tokens("root@example.com")
    assert statuses(clients, admin.access) == everywhere(200)

    response = client.post(LOGOUT, headers=admin.headers)

    assert response.status_code == 204
    assert statuses(clients, admin.access) == everywhere(401)
    assert_error(refresh(client, admin.refresh), 401, "unauthorized")
    assert statuses(clients, other_session.access) == everywhere(200)
    # Remembered as long as the session's longest-lived token could be valid.
    redis = app.extensions[REDIS_EXTENSION]
    [key] = redis.keys("auth:revoked:session:*")
    assert 7 * 86400 - 5 <= redis.ttl(key) <= 7 * 86400


def test_logout_with_the_refresh_token_ends_the_session_too(clients, client, auth):
    admin = auth.admin()
    assert client.post(LOGOUT, headers=bearer(admin.refresh)).status_code == 204
    assert statuses(clients, admin.access) == everywhere(401)
    assert_error(refresh(client, admin.refresh), 401, "unauthorized")


def test_logout_twice_is_401(client, auth):
    tokens = auth.signup()
    assert client.post(LOGOUT, headers=tokens.headers).status_code == 204
    assert_error(client.post(LOGOUT, headers=tokens.headers), 401, "unauthorized")


def test_logout_without_a_token_is_401(client):
    assert_error(client.post(LOGOUT), 401, "unauthorized")


# --- password change and deactivation -------------------------------------------------------


def test_password_change_revokes_every_other_session_everywhere(clients, client, auth):
    admin = auth.admin()
    other_session = auth.tokens("root@example.com")

    response = client.post(
        PASSWORD,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=admin.headers,
    )

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    for old in (admin, other_session):
        assert statuses(clients, old.access) == everywhere(401)
        assert_error(refresh(client, old.refresh), 401, "unauthorized")
    # The session that changed the password continues with its new tokens.
    assert claims(body["access_token"])["sid"] == claims(admin.access)["sid"]
    assert statuses(clients, body["access_token"]) == everywhere(200)
    assert refresh(client, body["refresh_token"]).status_code == 200
    assert_error(auth.login("root@example.com", DEFAULT_PASSWORD), 401, "unauthorized")
    assert auth.login("root@example.com", NEW_PASSWORD).status_code == 200


def test_deactivation_revokes_every_token_everywhere_and_blocks_login(clients, client, auth):
    admin = auth.admin()
    alice = auth.admin("alice@example.com")
    assert statuses(clients, alice.access) == everywhere(200)

    response = client.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)

    assert response.status_code == 200
    assert statuses(clients, alice.access) == everywhere(401)
    assert_error(refresh(client, alice.refresh), 401, "unauthorized")
    assert_error(auth.login("alice@example.com"), 403, "account_disabled")

    # Enabling again lets her log in, but what she held before stays revoked.
    client.post(f"/api/v1/admin/users/{alice.user['id']}/enable", headers=admin.headers)
    assert statuses(clients, alice.access) == everywhere(401)
    assert_error(refresh(client, alice.refresh), 401, "unauthorized")
    assert statuses(clients, auth.tokens("alice@example.com").access) == everywhere(200)


def test_login_starts_a_new_session_each_time(client, auth):
    auth.register()
    first, second = auth.tokens(), auth.tokens()
    assert claims(first.access)["sid"] != claims(second.access)["sid"]
    # Ending one leaves the other.
    assert client.post(LOGOUT, headers=first.headers).status_code == 204
    assert client.get(ME, headers=second.headers).status_code == 200
