"""The system status page: database, Redis, migrations, model provider and the services."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from webapp import __version__

pytestmark = pytest.mark.integration

STATUS = "/api/v1/admin/status"
API_KEY = "sk-status-test-0123456789abcdef"


@pytest.fixture
def auth_service(make_app) -> Iterator[str]:
    """Serve a real auth app over HTTP on a free local port; return its base URL."""
    server = make_server("127.0.0.1", 0, make_app("auth"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_status_reports_every_part(make_app, auth, auth_service, closed_port):
    admin = auth.admin()
    dead = f"http://127.0.0.1:{closed_port}"
    app = make_app(
        "admin", STATUS_SERVICE_URLS=f"auth={auth_service},chat={dead},admin={auth_service}/"
    )

    response = app.test_client().get(STATUS, headers=admin.headers)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"] == __version__
    assert body["database"]["status"] == "ok"
    assert body["database"]["latency_ms"] > 0  # measured (a round trip is never 0.0 ms)
    migration = body["database"]["migration"]
    assert migration["current"] == migration["head"]
    assert migration["up_to_date"] is True
    assert body["redis"]["status"] == "ok"
    assert body["model"] == {"status": "ok", "provider": "offline", "model": "offline"}
    services = body["services"]
    assert services["auth"]["status"] == "ok"
    assert services["admin"]["url"] == auth_service  # the trailing slash is dropped
    assert services["chat"]["status"] == "unavailable"
    assert services["chat"]["error"] == "ConnectError"
    # One part down: the whole is degraded.
    assert body["status"] == "degraded"


def test_all_ok_with_an_openai_compatible_provider(make_app, auth, auth_service, fake_openai):
    admin = auth.admin()
    fake_openai.configure("chat-model", tokens=3)  # a model the server lists
    urls = ",".join(f"{name}={auth_service}" for name in ("auth", "chat", "admin"))
    app = make_app(
        "admin",
        STATUS_SERVICE_URLS=urls,
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY=API_KEY,
        LLM_MODEL="chat-model",
    )

    response = app.test_client().get(STATUS, headers=admin.headers)

    body = response.get_json()
    assert body["model"]["status"] == "ok"
    assert body["model"]["provider"] == "openai-compatible"
    assert body["model"]["model_listed"] is True
    assert body["status"] == "ok"
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]
    assert API_KEY not in response.get_data(as_text=True)


def test_an_unreachable_provider_is_reported_without_its_key(make_app, auth, closed_port):
    admin = auth.admin()
    app = make_app(
        "admin",
        OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port}/v1",
        OPENAI_API_KEY=API_KEY,
        LLM_MODEL="chat-model",
    )

    response = app.test_client().get(STATUS, headers=admin.headers)

    assert response.status_code == 200
    model = response.get_json()["model"]
    assert (model["status"], model["error"]) == ("unavailable", "APIConnectionError")
    assert API_KEY not in response.get_data(as_text=True)


def test_a_down_redis_is_reported_not_raised(make_app, auth, closed_port):
    admin = auth.admin()
    app = make_app("admin", REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")

    response = app.test_client().get(STATUS, headers=admin.headers)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["redis"]["status"] == "unavailable"
    assert body["database"]["status"] == "ok"
    assert body["status"] == "degraded"


@pytest.mark.parametrize(
    "value",
    ["auth", "auth=ftp://x", "billing=http://127.0.0.1:1", "auth=http://a:1,auth=http://b:2"],
)
def test_bad_service_urls_are_refused_naming_the_variable(settings_env, value):
    from webapp.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**settings_env, "STATUS_SERVICE_URLS": value})
    assert "STATUS_SERVICE_URLS" in raised.value.errors
