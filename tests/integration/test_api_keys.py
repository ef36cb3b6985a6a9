"""Personal API keys: created and shown once, stored as a hash, listed, expiring, revoked, audited.

The keys authenticate the OpenAI-compatible API (``/v1``) only; what they do there is in
``test_openai_api.py``. Here: the key API of the owner (``/api/v1/auth/api-keys``) and of the
admins (``/api/v1/admin/api-keys``), and that a key is no credential for ``/api/v1``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.assertions import assert_error, assert_names_field
from webapp.app import create_app
from webapp.extensions import db
from webapp.models import ApiKey, AuditEvent
from webapp.services import api_keys
from webapp.settings import Settings

pytestmark = pytest.mark.integration

KEYS = "/api/v1/auth/api-keys"
ADMIN_KEYS = "/api/v1/admin/api-keys"


def create(client, tokens, **body) -> dict:
    response = client.post(KEYS, json={"name": "laptop", **body}, headers=tokens.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def rows(app) -> list[ApiKey]:
    with app.app_context():
        found = list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))
        db.session.remove()
        return found


def audit_events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        found = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        db.session.remove()
        return found


def authenticates(app, key: str) -> bool:
    with app.app_context():
        try:
            return api_keys.authenticate(db.session(), key) is not None
        finally:
            db.session.remove()


def test_a_key_is_shown_once_and_only_its_hash_is_stored(app, client, alice):
    created = create(client, alice)
    key = created["key"]
    assert api_keys.looks_like_key(key)
    assert len(key) == len("cbk_") + 40
    listed = created["api_key"]
    assert listed["name"] == "laptop"
    assert listed["prefix"] == key[:12]
    assert listed["expires_at"] is None
    assert listed["last_used_at"] is None
    assert "key_hash" not in listed

    (row,) = rows(app)
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {row.name, row.prefix, row.key_hash}
    # Listed again: never the key.
    body = client.get(KEYS, headers=alice.headers).get_json()
    assert body == {"api_keys": [listed]}
    assert key not in str(body)


def test_two_keys_differ(client, alice):
    first, second = create(client, alice)["key"], create(client, alice)["key"]
    assert first != second


def test_the_key_authenticates_until_revoked(app, client, alice):
    created = create(client, alice)
    assert authenticates(app, created["key"])
    response = client.delete(f"{KEYS}/{created['api_key']['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert not authenticates(app, created["key"])
    # Revoked keys leave the list; revoking again is a 404.
    assert client.get(KEYS, headers=alice.headers).get_json() == {"api_keys": []}
    again = client.delete(f"{KEYS}/{created['api_key']['id']}", headers=alice.headers)
    assert_error(again, 404, "not_found")


def test_last_used_is_recorded_at_most_once_a_minute(app, client, alice):
    created = create(client, alice)
    key, key_id = created["key"], created["api_key"]["id"]
    assert authenticates(app, key)
    (first,) = rows(app)
    assert first.last_used_at is not None
    assert authenticates(app, key)
    (second,) = rows(app)
    assert second.last_used_at == first.last_used_at
    # A minute later it is written again.
    with app.app_context():
        db.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=first.last_used_at - timedelta(minutes=2))
        )
        db.session.commit()
        db.session.remove()
    assert authenticates(app, key)
    (third,) = rows(app)
    assert third.last_used_at > first.last_used_at - timedelta(minutes=1)
    listed = client.get(KEYS, headers=alice.headers).get_json()["api_keys"][0]
    assert datetime.fromisoformat(listed["last_used_at"]) == third.last_used_at


def test_an_expired_key_fails_and_stays_listed(app, client, alice):
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = create(client, alice, expires_at=soon.isoformat())
    assert datetime.fromisoformat(created["api_key"]["expires_at"]) == soon
    assert authenticates(app, created["key"])
    with app.app_context():
        db.session.execute(
            update(ApiKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
    assert not authenticates(app, created["key"])
    assert len(client.get(KEYS, headers=alice.headers).get_json()["api_keys"]) == 1


def test_a_date_as_expiry_is_midnight_utc(client, alice):
    created = create(client, alice, expires_at="2999-01-31")
    assert created["api_key"]["expires_at"] == "2999-01-31T00:00:00+00:00"


def test_a_disabled_owners_keys_fail_at_once(app, client, auth, alice):
    admin = auth.admin()
    created = create(client, alice)
    assert authenticates(app, created["key"])
    client.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)
    assert not authenticates(app, created["key"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "expires_at": "yesterday"}, "expires_at"),
        ({"name": "ok", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "ok", "expires_at": 12}, "expires_at"),
        ({"name": "ok", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "ok", "scopes": ["all"]}, "scopes"),
    ],
)
def test_create_refuses_bad_bodies_naming_the_field(app, client, alice, body, field):
    assert_names_field(client.post(KEYS, json=body, headers=alice.headers), field)
    assert rows(app) == []


def test_a_user_holds_a_bounded_number_of_keys(client, alice, monkeypatch):
    monkeypatch.setattr(api_keys, "MAX_KEYS_PER_USER", 2)
    create(client, alice)
    create(client, alice)
    response = client.post(KEYS, json={"name": "third"}, headers=alice.headers)
    assert_error(response, 409, "conflict")


def test_the_key_routes_need_a_signed_in_user(client):
    assert_error(client.get(KEYS), 401, "unauthorized")
    assert_error(client.post(KEYS, json={"name": "x"}), 401, "unauthorized")
    assert_error(client.delete(f"{KEYS}/1"), 401, "unauthorized")


def test_a_key_is_no_credential_for_the_api(client, alice):
    key = create(client, alice)["key"]
    for path in ("/api/v1/auth/me", KEYS, "/api/v1/chat/conversations", "/api/v1/admin/stats"):
        assert_error(
            client.get(path, headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized"
        )


def test_creation_and_revocation_are_audited_without_the_key(app, client, alice):
    created = create(client, alice, expires_at="2999-01-01")
    client.delete(f"{KEYS}/{created['api_key']['id']}", headers=alice.headers)
    (made,) = audit_events(app, "api_key.create")
    (revoked,) = audit_events(app, "api_key.revoke")
    for event in (made, revoked):
        assert event.actor_id == alice.user["id"]
        assert event.target_type == "api_key"
        assert event.target_id == str(created["api_key"]["id"])
        assert event.details["prefix"] == created["key"][:12]
        assert created["key"] not in str(event.details)
    assert made.details["name"] == "laptop"
    assert made.details["expires_at"] == "2999-01-01T00:00:00+00:00"


# --- ownership: every route with a key id -----------------------------------------------------

_UNIT_SETTINGS = Settings.from_env(
    {
        "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "collection-only-secret-key-" + "x" * 32,
    }
)
# Built while collecting (it connects to nothing): a key route added later is covered here.
_KEY_ROUTES = sorted(
    (method, rule.rule)
    for rule in create_app("auth", _UNIT_SETTINGS).url_map.iter_rules()
    if "api_key_id" in rule.arguments
    for method in (rule.methods or ())
    if method not in ("HEAD", "OPTIONS")
)


def test_the_ownership_test_sees_every_key_route():
    assert ("DELETE", "/api/v1/auth/api-keys/<id:api_key_id>") in _KEY_ROUTES


@pytest.mark.parametrize(("method", "rule"), _KEY_ROUTES)
def test_another_users_key_is_404(app, client, auth, alice, method, rule):
    mallory = auth.signup("mallory@example.com")
    created = create(client, alice)
    path = rule.replace("<id:api_key_id>", str(created["api_key"]["id"]))
    assert_error(client.open(path, method=method, headers=mallory.headers), 404, "not_found")
    assert authenticates(app, created["key"])
    assert audit_events(app, "api_key.revoke") == []
    # Mallory's own list does not show it either.
    assert client.get(KEYS, headers=mallory.headers).get_json() == {"api_keys": []}


# --- admins -----------------------------------------------------------------------------------


def test_admins_list_everyones_keys_with_the_owner(client, auth, alice):
    admin = auth.admin()
    mallory = auth.signup("mallory@example.com")
    first = create(client, alice)
    second = create(client, mallory, name="script")
    response = client.get(ADMIN_KEYS, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    listed = response.get_json()["api_keys"]
    assert [(k["id"], k["user_id"], k["user_email"], k["name"]) for k in listed] == [
        (first["api_key"]["id"], alice.user["id"], "alice@example.com", "laptop"),
        (second["api_key"]["id"], mallory.user["id"], "mallory@example.com", "script"),
    ]
    assert first["key"] not in str(listed)
    assert second["key"] not in str(listed)
    only = client.get(f"{ADMIN_KEYS}?user_id={mallory.user['id']}", headers=admin.headers)
    assert [k["name"] for k in only.get_json()["api_keys"]] == ["script"]
    assert_names_field(client.get(f"{ADMIN_KEYS}?user_id=zero", headers=admin.headers), "user_id")


def test_an_admin_revokes_anyones_key_audited_as_the_admin(app, client, auth, alice):
    admin = auth.admin()
    created = create(client, alice)
    response = client.delete(f"{ADMIN_KEYS}/{created['api_key']['id']}", headers=admin.headers)
    assert response.status_code == 204
    assert not authenticates(app, created["key"])
    (event,) = audit_events(app, "api_key.revoke")
    assert event.actor_id == admin.user["id"]
    assert event.details["owner_id"] == alice.user["id"]
    again = client.delete(f"{ADMIN_KEYS}/{created['api_key']['id']}", headers=admin.headers)
    assert_error(again, 404, "not_found")
    assert client.get(ADMIN_KEYS, headers=admin.headers).get_json() == {"api_keys": []}


def test_the_admin_key_routes_are_for_admins(client, alice):
    created = create(client, alice)
    assert_error(client.get(ADMIN_KEYS, headers=alice.headers), 403, "forbidden")
    response = client.delete(f"{ADMIN_KEYS}/{created['api_key']['id']}", headers=alice.headers)
    assert_error(response, 403, "forbidden")
