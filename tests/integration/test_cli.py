"""The ``chatbot`` command: create-admin, and the console script end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from webapp.commands import ADMIN_PASSWORD_ENV
from webapp.extensions import db
from webapp.models import AuditEvent, User

pytestmark = pytest.mark.integration

PASSWORD = "admin password 123"


def _users(app) -> list[tuple[str, str, bool]]:
    with app.app_context():
        rows = db.session.scalars(select(User).order_by(User.id))
        return [(u.email, u.role, u.password_hash.startswith("$argon2id$")) for u in rows]


def test_create_admin_creates_then_changes_nothing(app, runner, auth):
    env = {ADMIN_PASSWORD_ENV: PASSWORD}
    first = runner.invoke(args=["create-admin", "--email", "Root@Example.com"], env=env)
    assert first.exit_code == 0, first.output
    assert "Created admin account root@example.com" in first.output
    assert PASSWORD not in first.output

    second = runner.invoke(args=["create-admin", "--email", "root@example.com"], env=env)
    assert second.exit_code == 0, second.output
    assert "already an admin; nothing changed" in second.output

    assert _users(app) == [("root@example.com", "admin", True)]
    assert auth.login("root@example.com", PASSWORD).status_code == 200
    # Audited once: the run that changed something.
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "cli.admin_provisioned")
        ).all()
        assert [(e.target_id, e.details) for e in events] == [
            (
                str(_user_id(app, "root@example.com")),
                {"created": True, "promoted": False, "credentials_reset": False},
            )
        ]


def _user_id(app, email: str) -> int:
    with app.app_context():
        return db.session.scalars(select(User.id).where(User.email == email)).one()


def test_create_admin_promotes_an_existing_user_keeping_the_password(app, runner, auth):
    auth.register("alice@example.com", "alice's own password")
    result = runner.invoke(
        args=["create-admin", "--email", "alice@example.com"],
        env={ADMIN_PASSWORD_ENV: PASSWORD},
    )
    assert result.exit_code == 0, result.output
    assert "Promoted existing user alice@example.com" in result.output
    assert _users(app) == [("alice@example.com", "admin", True)]
    assert auth.login("alice@example.com", "alice's own password").status_code == 200
    assert auth.login("alice@example.com", PASSWORD).status_code == 401


def test_create_admin_can_reset_the_password(runner, auth):
    runner.invoke(
        args=["create-admin", "--email", "root@example.com"], env={ADMIN_PASSWORD_ENV: PASSWORD}
    )
    result = runner.invoke(
        args=["create-admin", "--email", "root@example.com", "--reset-password"],
        env={ADMIN_PASSWORD_ENV: "a brand new password"},
    )
    assert result.exit_code == 0, result.output
    assert "Reset the password" in result.output
    assert auth.login("root@example.com", "a brand new password").status_code == 200


def test_create_admin_prompts_for_the_password_when_not_in_the_environment(app, runner):
    result = runner.invoke(
        args=["create-admin", "--email", "root@example.com", "--display-name", "Root"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        env={ADMIN_PASSWORD_ENV: ""},
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert _users(app) == [("root@example.com", "admin", True)]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "valid email"),
        ("root@example.com", "short", "at least 10"),
    ],
)
def test_create_admin_refuses_invalid_input(app, runner, email, password, message):
    result = runner.invoke(
        args=["create-admin", "--email", email], env={ADMIN_PASSWORD_ENV: password}
    )
    assert result.exit_code == 1
    assert message in result.output
    assert _users(app) == []


def _chatbot() -> str:
    # The console script installed next to this interpreter (the project's venv).
    script = Path(sys.executable).with_name("chatbot")
    assert script.exists(), "the chatbot console script is not installed; run pip install -e ."
    return str(script)


def test_console_script_runs_migrations_and_create_admin(app, subprocess_env):
    chatbot = _chatbot()
    # The schema is already at head: upgrade must be a harmless no-op.
    upgrade = subprocess.run(
        [chatbot, "db", "upgrade"], env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert upgrade.returncode == 0, upgrade.stderr
    current = subprocess.run(
        [chatbot, "db", "current"], env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert "0007 (head)" in current.stdout, current.stdout + current.stderr

    env = {**subprocess_env, ADMIN_PASSWORD_ENV: PASSWORD}
    created = subprocess.run(
        [chatbot, "create-admin", "--email", "ops@example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert "Created admin account ops@example.com" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    assert _users(app) == [("ops@example.com", "admin", True)]


def test_console_script_names_a_bad_setting_without_a_traceback(subprocess_env):
    env = {**subprocess_env, "SECRET_KEY": "too short", "DATABASE_POOL_SIZE": "many"}
    result = subprocess.run(
        [_chatbot(), "db", "current"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "DATABASE_POOL_SIZE" in result.stderr
    assert "Traceback" not in result.stderr
