"""The HTTP contract of the auth endpoints: content type, body size, and CORS from CORS_ORIGINS."""

from __future__ import annotations

import pytest

from tests.assertions import assert_error
from tests.integration.auth_support import CONVERSATIONS, LOGIN, ME, PASSWORD, REGISTER, SESSION
from webapp.app import MAX_CONTENT_LENGTH

pytestmark = pytest.mark.integration

UI = "https://ui.example.com"
EVIL = "https://evil.example.net"

# Every auth endpoint that reads a JSON body, and its method.
JSON_ENDPOINTS = [
    ("post", REGISTER),
    ("post", LOGIN),
    ("post", SESSION),
    ("patch", ME),
    ("post", PASSWORD),
]


@pytest.mark.parametrize(("method", "url"), JSON_ENDPOINTS)
def test_a_body_that_is_not_json_is_415(auth, client, method, url):
    tokens = auth.signup()
    response = getattr(client, method)(
        url,
        data="email=a@example.com",
        content_type="application/x-www-form-urlencoded",
        headers=tokens.headers,
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(("method", "url"), JSON_ENDPOINTS)
def test_a_body_over_the_limit_is_413(auth, client, method, url):
    tokens = auth.signup()
    body = '{"email": "' + "a" * MAX_CONTENT_LENGTH + '"}'
    response = getattr(client, method)(
        url, data=body, content_type="application/json", headers=tokens.headers
    )
    assert_error(response, 413, "payload_too_large")


@pytest.fixture
def cors_client(app, make_app):
    """A client of an app that allows the UI's origin."""
    return make_app("all", CORS_ORIGINS=f"{UI}, https://other.example.com").test_client()


def test_a_listed_origin_may_read_responses(auth, cors_client):
    tokens = auth.signup()
    response = cors_client.get(ME, headers=tokens.headers | {"Origin": UI})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == UI
    # Cookies stay with the site that serves the UI.
    assert "Access-Control-Allow-Credentials" not in response.headers
    # Error responses are readable too, with the limit's Retry-After.
    error = cors_client.get(ME, headers={"Origin": UI})
    assert error.status_code == 401
    assert error.headers["Access-Control-Allow-Origin"] == UI
    assert "Retry-After" in error.headers["Access-Control-Expose-Headers"]


def test_an_unlisted_origin_gets_no_cors_headers(auth, cors_client):
    tokens = auth.signup()
    response = cors_client.get(ME, headers=tokens.headers | {"Origin": EVIL})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_preflight_allows_listed_origins_only(cors_client):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, X-CSRF-TOKEN",
    }
    allowed = cors_client.options(CONVERSATIONS, headers=preflight | {"Origin": UI})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == UI
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    headers = {
        h.strip().lower() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type", "x-csrf-token"} <= headers

    refused = cors_client.options(CONVERSATIONS, headers=preflight | {"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize("service", ["auth", "chat", "admin"])
def test_without_cors_origins_no_origin_is_allowed(make_app, service):
    client = make_app(service).test_client()
    response = client.get("/health", headers={"Origin": UI})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        CONVERSATIONS, headers={"Origin": UI, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize("service", ["chat", "admin"])
def test_every_service_honours_cors_origins(make_app, service):
    client = make_app(service, CORS_ORIGINS=UI).test_client()
    url = CONVERSATIONS if service == "chat" else "/api/v1/admin/stats"
    assert client.get(url, headers={"Origin": UI}).headers["Access-Control-Allow-Origin"] == UI
    assert "Access-Control-Allow-Origin" not in client.get(url, headers={"Origin": EVIL}).headers
