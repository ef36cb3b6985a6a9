"""The app factory and the HTTP layer, exercised without touching a database or Redis.

create_app connects to nothing until a request needs it, and every request below is refused
before any service code runs.
"""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from tests.assertions import assert_error
from webapp.app import MAX_CONTENT_LENGTH, create_app
from webapp.rate_limits import RATE_LIMITER_EXTENSION
from webapp.settings import Settings

SETTINGS = Settings.from_env(
    {
        # Port 1 on localhost: nothing listens, so an accidental connection fails loudly.
        "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "unit-test-secret-key-" + "x" * 32,
        "ACCESS_TOKEN_EXPIRE_MINUTES": "20",
        "REFRESH_TOKEN_EXPIRE_DAYS": "3",
    }
)


@pytest.fixture
def app() -> Flask:
    return create_app("auth", SETTINGS)


def test_unknown_service_is_refused():
    with pytest.raises(ValueError, match="unknown service"):
        create_app("billing", SETTINGS)


def test_factory_configures_from_settings(app):
    assert app.config["SERVICE_NAME"] == "auth"
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["JWT_ALGORITHM"] == "HS256"
    assert app.config["JWT_DECODE_ALGORITHMS"] == ["HS256"]
    assert app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 20 * 60
    assert app.config["JWT_REFRESH_TOKEN_EXPIRES"].days == 3
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_CONTENT_LENGTH
    assert app.extensions["settings"] is SETTINGS
    assert "bot" not in app.extensions  # built lazily, and only by the chat service


def test_factory_registers_create_admin_and_db_commands(app):
    commands = app.cli.list_commands(None)
    assert "create-admin" in commands
    assert "db" in commands


def test_unknown_route_is_json_404(app):
    response = app.test_client().get("/api/v1/nothing")
    assert_error(response, 404, "not_found")


def test_wrong_method_is_json_405(app):
    response = app.test_client().get("/api/v1/auth/login")
    assert_error(response, 405, "method_not_allowed")


def test_non_json_body_is_415(app):
    response = app.test_client().post("/api/v1/auth/login", data="a=b", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_413(app):
    response = app.test_client().post(
        "/api/v1/auth/login", data="x" * (MAX_CONTENT_LENGTH + 1), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_a_chat_message_of_maximum_length_fits_the_body_limit():
    # The worst case: every one of 8000 characters escaped as a surrogate pair.
    body = '{"content": "' + "\\ud83d\\ude00" * 8000 + '"}'
    assert len(body.encode()) < MAX_CONTENT_LENGTH


def test_unknown_field_is_rejected_before_anything_is_stored(app):
    response = app.test_client().post(
        "/api/v1/auth/register",
        json={"email": "a@example.com", "password": "long enough", "is_admin": True},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "validation_error",
        "message": "Unknown field: is_admin",
        "field": "is_admin",
    }


def test_protected_route_without_token_is_401(app):
    response = app.test_client().get("/api/v1/auth/me")
    assert_error(response, 401, "unauthorized")


def test_garbage_bearer_token_is_401(app):
    response = app.test_client().get("/api/v1/auth/me", headers={"Authorization": "Bearer abc"})
    assert_error(response, 401, "unauthorized")


def test_health_needs_no_dependency(app):
    body = app.test_client().get("/health").get_json()
    assert (body["status"], body["service"]) == ("ok", "auth")


def test_tokens_are_accepted_from_headers_then_cookies_with_csrf(app):
    assert app.config["JWT_TOKEN_LOCATION"] == ["headers", "cookies"]
    assert app.config["JWT_COOKIE_CSRF_PROTECT"] is True
    assert app.config["JWT_COOKIE_SECURE"] is True
    assert app.config["JWT_COOKIE_SAMESITE"] == "Strict"
    assert app.config["JWT_ACCESS_COOKIE_PATH"] == "/"
    assert app.config["JWT_REFRESH_COOKIE_PATH"] == "/api/v1/auth/"


def test_each_app_has_its_own_rate_limiter(app):
    other = create_app("chat", SETTINGS)
    assert app.extensions[RATE_LIMITER_EXTENSION] is not other.extensions[RATE_LIMITER_EXTENSION]


def test_client_address_comes_from_the_proxy_unless_told_otherwise(app):
    assert isinstance(app.wsgi_app, ProxyFix)
    direct = create_app("auth", dataclasses.replace(SETTINGS, trusted_proxy_count=0))
    assert not isinstance(direct.wsgi_app, ProxyFix)


@pytest.mark.parametrize("origin", ["https://ui.example.com", "https://evil.example.net"])
def test_without_cors_origins_no_cors_header_is_sent(app, origin):
    response = app.test_client().get("/health", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in response.headers
