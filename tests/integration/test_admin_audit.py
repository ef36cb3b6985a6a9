"""The audit log: which events are recorded, how they are listed, and that rows are final."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from tests.assertions import assert_names_field
from tests.integration.conftest import DEFAULT_PASSWORD
from tests.integration.paging_support import all_pages
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.services import audit

pytestmark = pytest.mark.integration

AUDIT = "/api/v1/admin/audit"
CLIENT_ADDRESS = "203.0.113.7"
PROXIED = {"X-Forwarded-For": CLIENT_ADDRESS}


def events(client, admin, query: str = "") -> list[dict]:
    response = client.get(f"{AUDIT}{query}", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["events"]


# --- security events ----------------------------------------------------------------------------


def test_failed_and_disabled_logins_are_recorded_with_the_client_address(client, auth, alice):
    admin = auth.admin()
    wrong = {"email": "Alice@Example.com", "password": "not the password"}
    assert client.post("/api/v1/auth/login", json=wrong, headers=PROXIED).status_code == 401
    unknown = {"email": "nobody@example.com", "password": "whatever it is"}
    assert client.post("/api/v1/auth/session", json=unknown).status_code == 401
    client.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)
    right = {"email": "alice@example.com", "password": DEFAULT_PASSWORD}
    assert client.post("/api/v1/auth/login", json=right).status_code == 403

    failed = events(client, admin, "?action=auth.login_failed")
    assert [(e["target_type"], e["target_id"], e["source_ip"]) for e in failed] == [
        ("email", "nobody@example.com", "127.0.0.1"),
        ("email", "alice@example.com", CLIENT_ADDRESS),
    ]
    assert all(e["actor_id"] is None for e in failed)
    # The password typed is nowhere in the log.
    everything = str(events(client, admin))
    assert "not the password" not in everything
    assert "whatever it is" not in everything
    disabled = events(client, admin, "?action=auth.login_disabled")
    assert [e["target_id"] for e in disabled] == ["alice@example.com"]
    assert [e["action"] for e in events(client, admin, "?action=admin.*")] == [
        "admin.user_disabled"
    ]


def test_a_login_refused_by_the_rate_limit_is_a_lockout(make_app, auth):
    app = make_app(LOGIN_RATE_LIMIT="2 per minute")
    client = app.test_client()
    auth.signup()
    admin = auth.admin()
    wrong = {"email": "alice@example.com", "password": "wrong password 1"}
    statuses = [
        client.post("/api/v1/auth/login", json=wrong, headers=PROXIED).status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 429]

    lockouts = events(client, admin, "?action=auth.lockout")
    assert [(e["target_id"], e["source_ip"]) for e in lockouts] == [
        ("alice@example.com", CLIENT_ADDRESS)
    ]
    assert len(events(client, admin, "?action=auth.login_failed")) == 2


def test_logout_password_change_and_refresh_reuse_are_recorded(client, auth, alice):
    admin = auth.admin()
    spent = alice.refresh
    assert client.post("/api/v1/auth/refresh", headers=auth.bearer(spent)).status_code == 200
    # The rotated token again: its session is revoked, and that is recorded.
    assert client.post("/api/v1/auth/refresh", headers=auth.bearer(spent)).status_code == 401
    other = auth.tokens()
    assert client.post("/api/v1/auth/logout", headers=other.headers).status_code == 204
    third = auth.tokens()
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "another Passphrase 7"},
        headers=third.headers,
    )
    assert changed.status_code == 200

    recorded = events(client, admin, f"?actor_id={alice.user['id']}")
    assert [e["action"] for e in recorded] == [
        "auth.password_changed",
        "auth.logout",
        "auth.refresh_reuse",
    ]
    assert {e["actor_id"] for e in recorded} == {alice.user["id"]}
    assert recorded[1]["target_type"] == recorded[2]["target_type"] == "session"
    # The session ids are recorded, never a token.
    everything = str(events(client, admin))
    for token in (alice.access, alice.refresh, other.access, other.refresh, third.access):
        assert token not in everything


# --- listing ------------------------------------------------------------------------------------


def test_filters_and_keyset_pages(app, client, auth):
    admin = auth.admin()
    with app.app_context():
        for number in range(7):
            audit.record(
                db.session,
                action="test.even" if number % 2 == 0 else "test.odd",
                actor_id=number,
                target_type="thing",
                target_id=number,
            )
        db.session.commit()
        db.session.remove()

    assert [e["actor_id"] for e in events(client, admin, "?action=test.even")] == [6, 4, 2, 0]
    assert [e["actor_id"] for e in events(client, admin, "?action=test.*")] == list(
        range(6, -1, -1)
    )
    assert [e["actor_id"] for e in events(client, admin, "?target_type=thing&target_id=3")] == [3]
    assert events(client, admin, "?until=2000-01-01") == []
    assert len(events(client, admin, "?since=2000-01-01T00:00:00Z&action=test.*")) == 7

    pages = all_pages(client, AUDIT, admin.headers, "events", action="test.*", limit=3)
    assert [e["actor_id"] for page in pages for e in page] == list(range(6, -1, -1))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?since=yesterday", "since"),
        ("?until=2026-01-01T00:00:00", "until"),
        ("?actor_id=0", "actor_id"),
        ("?limit=201", "limit"),
        ("?cursor=x", "cursor"),
        ("?actor=1", "actor"),
        ("?action=auth.%00", "action"),
        ("?target_id=" + "x" * 255, "target_id"),
        ("?target_type=", "target_type"),
    ],
)
def test_bad_filters_are_refused_naming_the_parameter(client, auth, query, field):
    admin = auth.admin()
    assert_names_field(client.get(f"{AUDIT}{query}", headers=admin.headers), field)


# --- append-only --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEvent).values(action="auth.nothing_happened"),
        update(AuditEvent).values(details={}),
        delete(AuditEvent),
    ],
    ids=["update-action", "update-details", "delete"],
)
def test_audit_rows_cannot_be_updated_or_deleted(app, statement):
    with app.app_context():
        audit.record(db.session, action="auth.login_failed", target_id="x@example.com")
        db.session.commit()
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(statement)
        db.session.rollback()
        # Even as raw SQL, outside the ORM.
        with db.engine.connect() as connection:
            with pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text("DELETE FROM audit_events"))
            connection.rollback()
        rows = db.session.scalars(db.select(AuditEvent)).all()
        assert [(r.action, r.target_id) for r in rows] == [("auth.login_failed", "x@example.com")]
        db.session.remove()


def test_a_recorded_event_is_part_of_the_callers_transaction(app):
    with app.app_context():
        audit.record(db.session, action="admin.user_disabled", target_id=1)
        db.session.rollback()
        assert db.session.scalars(db.select(AuditEvent)).all() == []
        db.session.remove()


def test_secret_looking_details_and_bad_addresses_are_not_stored(app):
    with app.app_context():
        event = audit.record(
            db.session,
            action="admin.test",
            source_ip="not-an-address",
            details={"url": "https://example.com", "secret": "s3cr3t", "nested": {"api_key": "k"}},
        )
        db.session.commit()
        stored = db.session.get(AuditEvent, event.id)
        assert stored.source_ip is None
        assert stored.details == {
            "url": "https://example.com",
            "secret": "[redacted]",
            "nested": {"api_key": "[redacted]"},
        }
        db.session.remove()


def test_unstorable_client_text_does_not_lose_the_event(app):
    with app.app_context():
        event = audit.record(
            db.session, action="auth.lockout", target_type="email", target_id="a\x00b\ud800c"
        )
        db.session.commit()
        assert db.session.get(AuditEvent, event.id).target_id == "ab?c"
        db.session.remove()
