"""Logs are JSON lines on stderr with the request id, and never carry a secret.

One test drives a real gunicorn configured like the deployed one (``logconfig_dict`` from
``webapp.logs``): its error and access logs and the app's own lines. Another checks the app's
lines in process, including the configured secret values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.integration.gunicorn_support import start_gunicorn
from tests.waiting import EVENT_TIMEOUT, stop, wait_for
from webapp.logs import REQUEST_ID_HEADER

pytestmark = pytest.mark.integration

PASSWORD = "Log-test passphrase 8"

# The logging lines of roles/app/templates/etc/chatbot/gunicorn.conf.py.j2, and a bind address.
CONFIG = """\
from webapp.logs import gunicorn_logconfig

bind = "127.0.0.1:{port}"
wsgi_app = "webapp.wsgi.auth:app"
workers = 1
worker_class = "gthread"
threads = 4
preload_app = True
accesslog = "-"
errorlog = "-"
loglevel = "info"
logconfig_dict = gunicorn_logconfig("auth")
"""


@pytest.fixture
def gunicorn_auth(
    tmp_path: Path, subprocess_env: dict[str, str], migrated_database: None
) -> Iterator[tuple[str, Path]]:
    """Run the auth service under gunicorn; yield its URL and the file its stderr goes to."""
    port = free_port()
    stderr = tmp_path / "stderr.log"
    stdout = tmp_path / "stdout.log"
    proc = start_gunicorn(tmp_path, CONFIG.format(port=port), subprocess_env, stdout, stderr)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/health", timeout=EVENT_TIMEOUT).status_code == 200
        except requests.ConnectionError:
            return False

    def exited() -> str | None:
        return None if proc.poll() is None else f"exit {proc.returncode}: {stderr.read_text()}"

    try:
        wait_for(healthy, "answer from gunicorn", abandon=exited, interval=0.1)
        yield url, stderr
        assert stdout.read_text() == "", "everything is logged on stderr"
    finally:
        # Only the master this fixture started, by its PID; it stops its own workers.
        stop(proc)


def _entries(path: Path) -> list[dict]:
    text = path.read_text()
    # Whole lines only: the server may be writing the next one right now.
    lines = [line for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line is JSON
        assert {"ts", "level", "logger", "service", "message"} <= set(entry), line
        entries.append(entry)
    return entries


def test_gunicorn_and_app_logs_are_json_without_secrets(app, gunicorn_auth, settings_env):
    # `app` first: its teardown empties the tables this test's requests wrote to.
    url, stderr = gunicorn_auth
    email = "logger@example.com"
    account = {"email": email, "password": PASSWORD}
    assert (
        requests.post(
            f"{url}/api/v1/auth/register", json=account, timeout=EVENT_TIMEOUT
        ).status_code
        == 201
    )
    tokens = requests.post(f"{url}/api/v1/auth/login", json=account, timeout=EVENT_TIMEOUT).json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    wrong = {"email": email, "password": PASSWORD + "x"}
    assert (
        requests.post(f"{url}/api/v1/auth/login", json=wrong, timeout=EVENT_TIMEOUT).status_code
        == 401
    )
    # Tokens and passwords where an access log would show them: the query string.
    me = requests.get(
        f"{url}/api/v1/auth/me?access_token={access}&password={PASSWORD.replace(' ', '+')}",
        headers={"Authorization": f"Bearer {access}", REQUEST_ID_HEADER: "trace-42"},
        timeout=EVENT_TIMEOUT,
    )
    assert me.status_code == 200
    assert me.headers[REQUEST_ID_HEADER] == "trace-42"
    generated = requests.get(f"{url}/health", timeout=EVENT_TIMEOUT).headers[REQUEST_ID_HEADER]
    assert len(generated) == 32
    refreshed = requests.post(
        f"{url}/api/v1/auth/refresh",
        headers={"Authorization": f"Bearer {refresh}"},
        timeout=EVENT_TIMEOUT,
    )
    assert refreshed.status_code == 200
    # The spent refresh token again: the app logs a warning about the reuse.
    last = "last-request"
    requests.post(
        f"{url}/api/v1/auth/refresh",
        headers={"Authorization": f"Bearer {refresh}", REQUEST_ID_HEADER: last},
        timeout=EVENT_TIMEOUT,
    )
    # gunicorn writes an access line after sending the response: wait for the last one.
    wait_for(
        lambda: any(
            e.get("request_id") == last
            for e in _entries(stderr)
            if e["logger"] == "gunicorn.access"
        ),
        "access line of the last request",
    )

    text = stderr.read_text()
    entries = _entries(stderr)
    for secret in (
        PASSWORD,
        PASSWORD.replace(" ", "+"),
        access,
        refresh,
        refreshed.json()["access_token"],
        settings_env["SECRET_KEY"],
    ):
        assert secret not in text
    assert any(e["logger"] == "gunicorn.error" and "Listening at" in e["message"] for e in entries)
    access_lines = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert {e["service"] for e in access_lines} == {"auth"}
    me_line = next(e for e in access_lines if e["path"].startswith("/api/v1/auth/me"))
    assert me_line["request_id"] == "trace-42"
    assert (me_line["method"], me_line["status"]) == ("GET", 200)
    assert "access_token=[redacted]" in me_line["path"]
    assert me_line["duration_ms"] > 0  # gunicorn's measure, not a missing one read as 0
    assert any(e.get("request_id") == generated for e in access_lines)
    reuse = [e for e in entries if e["logger"] == "webapp.services.sessions"]
    assert reuse
    assert reuse[0]["level"] == "WARNING"
    assert reuse[0]["request_id"]


def test_app_lines_carry_the_request_id_and_hide_configured_secrets(make_app, capsys):
    app = make_app("admin", OPENAI_API_KEY="opensesame-0123456789")
    settings = app.extensions["settings"]

    def noisy() -> str:
        app.logger.error(
            "oops: secret key %s, api key %s, database %s",
            settings.secret_key,
            settings.openai_api_key,
            settings.database_url,
        )
        return "ok"

    app.add_url_rule("/noisy", "noisy", noisy)
    capsys.readouterr()
    response = app.test_client().get("/noisy", headers={REQUEST_ID_HEADER: "abc.DEF-1"})
    assert response.headers[REQUEST_ID_HEADER] == "abc.DEF-1"
    # An id that could forge log content is replaced.
    forged = app.test_client().get("/noisy", headers={REQUEST_ID_HEADER: 'x" level=ERROR'})
    assert forged.headers[REQUEST_ID_HEADER] != 'x" level=ERROR'

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    noisy_lines = [e for e in lines if e["message"].startswith("oops")]
    assert [e["request_id"] for e in noisy_lines] == [
        "abc.DEF-1",
        forged.headers[REQUEST_ID_HEADER],
    ]
    assert {(e["service"], e["level"], e["logger"]) for e in noisy_lines} == {
        ("admin", "ERROR", "webapp")
    }
    for secret in (settings.secret_key, settings.openai_api_key, "opensesame"):
        assert secret not in err
    password = settings.database_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in err
