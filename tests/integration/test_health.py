"""Liveness and readiness probes, against the real PostgreSQL and Redis."""

from __future__ import annotations

import pytest

from webapp import __version__
from webapp.health.routes import release_name

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(
            "/health",
            # release: a checkout, not a release directory
            {"status": "ok", "service": "all", "version": __version__, "release": None},
            id="health names the service",
        ),
        pytest.param(
            "/ready",
            {"status": "ok", "service": "all", "checks": {"database": "ok", "redis": "ok"}},
            id="ready when database and redis answer",
        ),
    ],
)
def test_probes_answer_ok(client, probe, expected):
    response = client.get(probe)
    assert response.status_code == 200
    assert response.get_json() == expected


@pytest.mark.parametrize(
    ("prefix", "release"),
    [
        ("/opt/chatbot/releases/0.1.0-abc123/venv", "0.1.0-abc123"),
        ("/work/main/.venv", None),
        ("/usr", None),
    ],
)
def test_the_release_name_comes_from_the_virtualenv_path(prefix, release):
    assert release_name(prefix) == release


@pytest.mark.parametrize("service", ["auth", "chat", "admin"])
def test_every_service_has_health_and_ready(make_app, service):
    client = make_app(service).test_client()
    assert client.get("/health").get_json()["service"] == service
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.get_json()["service"] == service


def test_ready_is_503_naming_redis_when_redis_is_unreachable(make_app, unused_port):
    app = make_app("chat", REDIS_URL=f"redis://127.0.0.1:{unused_port}/0")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "redis": "unavailable"}
    assert body["error"]["code"] == "service_unavailable"
    assert "redis" in body["error"]["message"]
    assert "database" not in body["error"]["message"]


def test_ready_is_503_naming_the_database_when_it_is_unreachable(make_app, unused_port):
    app = make_app("auth", DATABASE_URL=f"postgresql://nobody:x@127.0.0.1:{unused_port}/none")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"] == {"database": "unavailable", "redis": "ok"}
    assert "database" in body["error"]["message"]


def test_health_does_not_depend_on_redis(make_app, unused_port):
    app = make_app("auth", REDIS_URL=f"redis://127.0.0.1:{unused_port}/0")
    assert app.test_client().get("/health").status_code == 200
