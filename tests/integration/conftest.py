"""Fixtures in the style of the Flask tutorial: ``app``, ``client``, ``runner`` and ``auth``.

The schema is created once per session by the real migrations; each test gets a fresh app and
finds the tables empty (truncated after every test, which is much faster than re-migrating).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from redis import Redis
from sqlalchemy import text
from werkzeug.test import TestResponse

from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.generation_support import chat_app
from webapp.app import create_app
from webapp.chat.runtime import RUNNER_EXTENSION
from webapp.extensions import REDIS_EXTENSION, db
from webapp.services import accounts
from webapp.settings import Settings

DEFAULT_PASSWORD = "correct horse battery"

AppFactory = Callable[..., Flask]


def finish_generations(app: Flask) -> None:
    """Let the replies the app is generating in the background finish (idempotent)."""
    runner = app.extensions.get(RUNNER_EXTENSION)
    if runner is not None:
        runner.shutdown(wait=True)


def dispose_app(app: Flask) -> None:
    """Close the app's database pool and Redis client, so no connection outlives its test."""
    finish_generations(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    redis_client: Redis = app.extensions[REDIS_EXTENSION]
    redis_client.close()
    # The client was given its pool, so close() leaves the pool's connections open.
    redis_client.connection_pool.disconnect()


@pytest.fixture(scope="session")
def migrated_database(settings: Settings) -> None:
    """Apply the packaged migrations to the test database once per session."""
    app = create_app("all", settings)
    try:
        with app.app_context():
            flask_migrate.upgrade()
    finally:
        dispose_app(app)


def _reset_state(app: Flask) -> None:
    # A reply still being generated would write into the tables being emptied.
    finish_generations(app)
    with app.app_context():
        db.session.remove()
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    app.extensions[REDIS_EXTENSION].flushdb()


@pytest.fixture
def app(settings: Settings, migrated_database: None) -> Iterator[Flask]:
    """A fresh "all" app on the migrated, empty test database."""
    app = create_app("all", settings)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        try:
            _reset_state(app)
        finally:
            dispose_app(app)


@pytest.fixture
def make_app(settings_env: dict[str, str], migrated_database: None) -> Iterator[AppFactory]:
    """Factory for extra apps: another service, or settings overridden through the environment."""
    created: list[Flask] = []

    def make(service: str = "all", **env_overrides: str) -> Flask:
        app = create_app(service, Settings.from_env({**settings_env, **env_overrides}))
        app.config["TESTING"] = True
        created.append(app)
        return app

    yield make
    for app in created:
        dispose_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for ``app``'s commands."""
    return app.test_cli_runner()


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tokens:
    """The tokens login returned, and the user they belong to."""

    access: str
    refresh: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header carrying the access token."""
        return bearer(self.access)


class AuthActions:
    """Register and log in through the API, as a client would."""

    def __init__(self, client: FlaskClient, app: Flask) -> None:
        self._client = client
        self._app = app

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        """Return the Authorization header for any token (access, refresh or forged)."""
        return bearer(token)

    def register(
        self,
        email: str = "alice@example.com",
        password: str = DEFAULT_PASSWORD,
        **extra: Any,
    ) -> TestResponse:
        """POST /api/v1/auth/register."""
        return self._client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, **extra}
        )

    def login(
        self, email: str = "alice@example.com", password: str = DEFAULT_PASSWORD
    ) -> TestResponse:
        """POST /api/v1/auth/login."""
        return self._client.post("/api/v1/auth/login", json={"email": email, "password": password})

    def tokens(self, email: str = "alice@example.com", password: str = DEFAULT_PASSWORD) -> Tokens:
        """Log in (which must succeed) and return the tokens."""
        response = self.login(email, password)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        return Tokens(body["access_token"], body["refresh_token"], body["user"])

    def signup(self, email: str = "alice@example.com", password: str = DEFAULT_PASSWORD) -> Tokens:
        """Register (which must succeed), log in and return the tokens."""
        response = self.register(email, password)
        assert response.status_code == 201, response.get_json()
        return self.tokens(email, password)

    def admin(self, email: str = "root@example.com", password: str = DEFAULT_PASSWORD) -> Tokens:
        """Provision an admin the way the CLI does, log in and return the tokens."""
        with self._app.app_context():
            accounts.ensure_admin(db.session, email=email, password=password)
        return self.tokens(email, password)


@pytest.fixture
def auth(client: FlaskClient, app: Flask) -> AuthActions:
    """Helper to register users and obtain tokens through the API."""
    return AuthActions(client, app)


# --- Shared by the chat tests -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    """Run the OpenAI-compatible test server for one test module."""
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def fake_openai(server: FakeOpenAIServer) -> FakeOpenAIServer:
    """Return the module's test model server with its behaviours and records cleared."""
    server.reset()
    return server


@pytest.fixture
def chat(app, make_app, fake_openai):
    """Build a chat app on the fake server (``app`` first: it empties the tables last)."""

    def build(**env: str):
        return chat_app(make_app, fake_openai, **env)

    return build


@pytest.fixture
def alice(auth):
    """Sign up the usual first user."""
    return auth.signup("alice@example.com")
