"""Admins disable and enable accounts; the last active admin cannot be disabled."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from tests.assertions import assert_error
from tests.integration.conftest import DEFAULT_PASSWORD
from tests.waiting import join, wait_for
from webapp.errors import ConflictError
from webapp.extensions import db
from webapp.services import accounts

pytestmark = pytest.mark.integration


def disable(client, user_id: int, headers: dict[str, str]):
    return client.post(f"/api/v1/admin/users/{user_id}/disable", headers=headers)


def enable(client, user_id: int, headers: dict[str, str]):
    return client.post(f"/api/v1/admin/users/{user_id}/enable", headers=headers)


def test_disable_and_enable_an_account(auth, client):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")

    response = disable(client, alice.user["id"], admin.headers)

    assert response.status_code == 200
    assert response.get_json()["user"] | {"is_active": True} == alice.user
    assert response.get_json()["user"]["is_active"] is False
    assert_error(auth.login("alice@example.com"), 403, "account_disabled")
    # Disabling twice changes nothing.
    assert disable(client, alice.user["id"], admin.headers).status_code == 200

    response = enable(client, alice.user["id"], admin.headers)
    assert response.status_code == 200
    assert response.get_json()["user"]["is_active"] is True
    assert auth.login("alice@example.com").status_code == 200


@pytest.mark.parametrize("action", [disable, enable])
def test_only_admins_may_disable_or_enable(auth, client, action):
    alice = auth.signup("alice@example.com")
    bob = auth.signup("bob@example.com")
    assert_error(action(client, bob.user["id"], {}), 401, "unauthorized")
    assert_error(action(client, bob.user["id"], alice.headers), 403, "forbidden")
    assert_error(action(client, alice.user["id"], alice.headers), 403, "forbidden")
    assert auth.login("bob@example.com").status_code == 200


@pytest.mark.parametrize("action", [disable, enable])
@pytest.mark.parametrize("user_id", [999, 2147483647])
def test_unknown_user_is_404(auth, client, action, user_id):
    admin = auth.admin()
    assert_error(action(client, user_id, admin.headers), 404, "not_found")


def test_an_id_outside_the_column_range_is_404(auth, client):
    admin = auth.admin()
    assert_error(disable(client, 2147483648, admin.headers), 404, "not_found")


def test_the_last_active_admin_cannot_be_disabled(auth, client):
    root = auth.admin()
    error = assert_error(disable(client, root.user["id"], root.headers), 409, "conflict")
    assert "last active admin" in error["message"]
    assert auth.login("root@example.com").status_code == 200


def test_an_admin_may_disable_another_until_one_is_left(auth, client):
    root = auth.admin()
    other = auth.admin("ops@example.com")

    assert disable(client, other.user["id"], root.headers).status_code == 200
    # The disabled admin does not count: root is now the last active one.
    assert_error(disable(client, root.user["id"], root.headers), 409, "conflict")
    assert enable(client, other.user["id"], root.headers).status_code == 200
    fresh = auth.tokens("ops@example.com", DEFAULT_PASSWORD)
    assert disable(client, root.user["id"], fresh.headers).status_code == 200
    assert_error(auth.login("root@example.com"), 403, "account_disabled")


def _backends_blocked_by(app, pid: int) -> list[int]:
    """The backends waiting for a lock that backend ``pid`` holds (from ``pg_locks``)."""
    query = text("SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with app.app_context(), db.engine.connect() as connection:
        return list(connection.execute(query, {"pid": pid}).scalars())


def test_two_admins_disabling_each_other_at_once_leave_one_active(app, auth):
    root = auth.admin()
    ops = auth.admin("ops@example.com")
    outcome: list[str] = []

    def root_disabled_by_ops() -> None:
        with app.app_context():
            try:
                accounts.set_user_active(db.session, user_id=root.user["id"], active=False)
                outcome.append("disabled")
            except ConflictError:
                outcome.append("conflict")
            finally:
                db.session.remove()

    with app.app_context():
        engine = db.engine
    # The first request is half-way: it has checked the admins and disabled ops, uncommitted.
    with engine.connect() as first:
        transaction = first.begin()
        first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
        first.execute(
            text("SELECT id FROM users WHERE role = 'admin' AND is_active ORDER BY id FOR UPDATE")
        )
        first.execute(text("UPDATE users SET is_active = false WHERE id = :id"), ops.user)
        second = threading.Thread(target=root_disabled_by_ops)
        second.start()
        # The event itself: the second request's backend queued behind the first's locks (not
        # any backend of the cluster waiting for any lock, and not a guess at how long it takes
        # a busy machine to get there).
        wait_for(
            lambda: _backends_blocked_by(app, first_pid),
            "second request waiting for the first one's lock",
            abandon=lambda: None if second.is_alive() else f"it finished first: {outcome}",
        )
        transaction.commit()
    join(second)

    assert outcome == ["conflict"]
    assert auth.login("root@example.com").status_code == 200
