"""Rate limits on Redis (login, register, password change, the general API limit) and what
happens when Redis is down.

Apps with small limits share the test Redis with the ``app`` fixture, whose teardown flushes it.
The test client stands in for nginx: ``X-Forwarded-For`` gives each request its client address.
"""

from __future__ import annotations

import pytest

from tests.assertions import assert_error
from tests.integration.auth_support import (
    CONVERSATIONS,
    LOGIN,
    LOGOUT,
    ME,
    PASSWORD,
    REFRESH,
    REGISTER,
    SESSION,
    STATS,
)
from tests.integration.conftest import DEFAULT_PASSWORD, bearer

pytestmark = pytest.mark.integration

WRONG = "not the password 1"


def from_ip(address: str, **headers: str) -> dict[str, str]:
    """Headers of a request nginx relayed for a client at ``address``."""
    return {"X-Forwarded-For": address, **headers}


def login(client, email: str, password: str, address: str, url: str = LOGIN):
    return client.post(url, json={"email": email, "password": password}, headers=from_ip(address))


def assert_rate_limited(response) -> int:
    """Assert a 429 in the shared shape whose Retry-After agrees with the body; return it."""
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["retry_after"] == retry_after
    assert f"retry in {retry_after} seconds" in error["message"]
    return retry_after


@pytest.fixture
def limited_client(app, make_app):
    """A client of an app with a login limit of 3 per minute (``app`` cleans up after it)."""
    return make_app("all", LOGIN_RATE_LIMIT="3 per minute").test_client()


# --- login ----------------------------------------------------------------------------------


def test_login_flood_from_one_address_gets_429_with_retry_after(auth, limited_client):
    auth.register()
    for n in range(3):
        response = login(limited_client, f"nobody{n}@example.com", WRONG, "198.51.100.7")
        assert_error(response, 401, "unauthorized")

    assert_rate_limited(
        login(limited_client, "alice@example.com", DEFAULT_PASSWORD, "198.51.100.7")
    )
    # Another client address is not held up.
    assert (
        login(limited_client, "alice@example.com", DEFAULT_PASSWORD, "203.0.113.1").status_code
        == 200
    )


def test_failed_logins_for_one_account_are_limited_from_any_address(auth, limited_client):
    auth.register()
    auth.register("bob@example.com")
    for n in range(3):
        response = login(limited_client, "alice@example.com", WRONG, f"198.51.100.{n}")
        assert_error(response, 401, "unauthorized")

    # Even the right password, from a fresh address, waits.
    assert_rate_limited(login(limited_client, "ALICE@example.com", DEFAULT_PASSWORD, "192.0.2.1"))
    assert (
        login(limited_client, "bob@example.com", DEFAULT_PASSWORD, "192.0.2.1").status_code == 200
    )


def test_successful_logins_do_not_use_up_the_account_budget(auth, limited_client):
    auth.register()
    for n in range(5):
        response = login(limited_client, "alice@example.com", DEFAULT_PASSWORD, f"198.51.100.{n}")
        assert response.status_code == 200


def test_browser_and_api_logins_share_one_budget(auth, limited_client):
    auth.register()
    for url in (LOGIN, SESSION, LOGIN):
        assert_error(
            login(limited_client, "x@example.com", WRONG, "198.51.100.9", url), 401, "unauthorized"
        )
    response = login(limited_client, "alice@example.com", DEFAULT_PASSWORD, "198.51.100.9", SESSION)
    assert_rate_limited(response)
    assert "Set-Cookie" not in response.headers


def test_password_change_guesses_are_limited(auth, limited_client):
    tokens = auth.signup()

    def change(current: str):
        body = {"current_password": current, "new_password": "a good new password 4"}
        return limited_client.post(PASSWORD, json=body, headers=tokens.headers)

    for _ in range(3):
        assert_error(change(WRONG), 403, "forbidden", "current_password")
    assert_rate_limited(change(DEFAULT_PASSWORD))


# --- register -------------------------------------------------------------------------------


def test_registration_is_limited_per_address(app, make_app):
    client = make_app("all", REGISTER_RATE_LIMIT="2 per hour").test_client()

    def register(email: str, address: str):
        body = {"email": email, "password": DEFAULT_PASSWORD}
        return client.post(REGISTER, json=body, headers=from_ip(address))

    assert register("a@example.com", "198.51.100.1").status_code == 201
    assert register("b@example.com", "198.51.100.1").status_code == 201
    response = register("c@example.com", "198.51.100.1")
    error = assert_error(response, 429, "rate_limited")
    assert 3000 < int(response.headers["Retry-After"]) <= 3600
    assert error["retry_after"] == int(response.headers["Retry-After"])
    assert register("c@example.com", "198.51.100.2").status_code == 201


def test_registration_is_limited_per_email(app, make_app):
    client = make_app("all", REGISTER_RATE_LIMIT="2 per hour").test_client()
    body = {"email": "a@example.com", "password": DEFAULT_PASSWORD}
    assert client.post(REGISTER, json=body, headers=from_ip("198.51.100.1")).status_code == 201
    assert client.post(REGISTER, json=body, headers=from_ip("198.51.100.2")).status_code == 409
    response = client.post(REGISTER, json=body, headers=from_ip("198.51.100.3"))
    assert_error(response, 429, "rate_limited")


# --- the general API limit ------------------------------------------------------------------


@pytest.fixture
def tight(app, make_app):
    """Clients of the three services with a general limit of 3 requests per minute."""
    env = {"RATE_LIMIT_REQUESTS": "3", "RATE_LIMIT_WINDOW": "60"}
    return {
        service: make_app(service, **env).test_client() for service in ("auth", "chat", "admin")
    }


def test_general_limit_counts_a_user_across_all_services(auth, tight):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    assert tight["auth"].get(ME, headers=admin.headers).status_code == 200
    assert tight["chat"].get(CONVERSATIONS, headers=admin.headers).status_code == 200
    assert tight["admin"].get(STATS, headers=admin.headers).status_code == 200

    assert_rate_limited(tight["auth"].get(ME, headers=admin.headers))
    assert_rate_limited(tight["chat"].get(CONVERSATIONS, headers=admin.headers))
    # Per user: another user behind the same address is not affected.
    assert tight["chat"].get(CONVERSATIONS, headers=alice.headers).status_code == 200


def test_general_limit_counts_anonymous_requests_per_address(tight):
    for _ in range(3):
        response = tight["auth"].get(ME, headers=from_ip("198.51.100.1"))
        assert_error(response, 401, "unauthorized")
    assert_rate_limited(tight["chat"].get(CONVERSATIONS, headers=from_ip("198.51.100.1")))
    assert_error(tight["auth"].get(ME, headers=from_ip("198.51.100.2")), 401, "unauthorized")


def test_a_forged_token_counts_as_anonymous_not_as_its_subject(auth, tight):
    alice = auth.signup()
    forged = bearer(alice.access[:-4] + "AAAA")
    for _ in range(3):
        tight["auth"].get(ME, headers=forged | from_ip("198.51.100.1"))
    # Alice's own budget is untouched by requests claiming to be her.
    assert tight["auth"].get(ME, headers=alice.headers | from_ip("198.51.100.1")).status_code == 200


def test_probes_and_metrics_are_not_limited(tight):
    for _ in range(5):
        assert tight["auth"].get("/health").status_code == 200
        assert tight["auth"].get("/metrics").status_code == 200


# --- Redis down -----------------------------------------------------------------------------


@pytest.fixture
def redis_down(app, make_app, unused_port):
    """A client of an app whose Redis is a closed port; database as usual."""
    return make_app(
        "all", REDIS_URL=f"redis://127.0.0.1:{unused_port}/0", LOGIN_RATE_LIMIT="3 per minute"
    ).test_client()


def test_redis_down_users_keep_reading_and_writing_their_data(auth, redis_down):
    tokens = auth.signup()
    assert redis_down.get(CONVERSATIONS, headers=tokens.headers).status_code == 200
    assert redis_down.post(CONVERSATIONS, json={}, headers=tokens.headers).status_code == 201
    me = redis_down.get(ME, headers=tokens.headers)
    assert me.status_code == 200
    assert me.get_json()["user"]["email"] == "alice@example.com"
    assert redis_down.get("/ready").status_code == 503


def test_redis_down_login_and_register_work_and_stay_limited_per_process(auth, redis_down):
    response = redis_down.post(
        REGISTER, json={"email": "bob@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201
    ok = login(redis_down, "bob@example.com", DEFAULT_PASSWORD, "198.51.100.1")
    assert ok.status_code == 200
    assert redis_down.get(ME, headers=bearer(ok.get_json()["access_token"])).status_code == 200

    for _ in range(3):
        assert_error(login(redis_down, "x@example.com", WRONG, "198.51.100.2"), 401, "unauthorized")
    assert_rate_limited(login(redis_down, "bob@example.com", DEFAULT_PASSWORD, "198.51.100.2"))


def test_redis_down_refresh_and_logout_fail_closed(auth, client, redis_down):
    tokens = auth.signup()
    assert_error(
        redis_down.post(REFRESH, headers=bearer(tokens.refresh)), 503, "service_unavailable"
    )
    assert_error(redis_down.post(LOGOUT, headers=tokens.headers), 503, "service_unavailable")
    # Nothing was spent or revoked: with Redis back, both still work.
    assert client.post(REFRESH, headers=bearer(tokens.refresh)).status_code == 200


def test_redis_down_password_change_still_revokes_every_token(auth, redis_down):
    tokens = auth.signup()
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "a good new password 5"}
    response = redis_down.post(PASSWORD, json=body, headers=tokens.headers)

    assert response.status_code == 200
    # The per-user check is in the database: it holds without Redis.
    assert_error(redis_down.get(CONVERSATIONS, headers=tokens.headers), 401, "unauthorized")
    new = bearer(response.get_json()["access_token"])
    assert redis_down.get(CONVERSATIONS, headers=new).status_code == 200


def test_redis_down_a_disabled_account_is_still_locked_out(auth, client, redis_down):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    disable = f"/api/v1/admin/users/{alice.user['id']}/disable"
    assert redis_down.post(disable, headers=admin.headers).status_code == 200
    assert_error(redis_down.get(CONVERSATIONS, headers=alice.headers), 401, "unauthorized")
    assert_error(
        login(redis_down, "alice@example.com", DEFAULT_PASSWORD, "192.0.2.1"),
        403,
        "account_disabled",
    )
