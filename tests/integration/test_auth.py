"""The auth service: registration, login, tokens, and everything they must refuse."""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import select, text

from tests.assertions import assert_error
from tests.integration.auth_support import b64, claims
from webapp.extensions import db
from webapp.models import User
from webapp.services import accounts

pytestmark = pytest.mark.integration


def _user_rows(app) -> list[User]:
    with app.app_context():
        return list(db.session.scalars(select(User).order_by(User.id)))


# --- registration ---------------------------------------------------------------------------


def test_register_creates_a_plain_user_with_a_hashed_password(app, auth):
    response = auth.register("Alice@Example.COM", display_name="Alice")

    assert response.status_code == 201
    user = response.get_json()["user"]
    assert set(user) == {"id", "email", "display_name", "role", "is_active", "created_at"}
    assert user["email"] == "alice@example.com"
    assert user["display_name"] == "Alice"
    assert user["role"] == "user"
    [row] = _user_rows(app)
    assert row.id == user["id"]
    assert row.email == "alice@example.com"
    assert row.is_active is True
    assert row.password_hash.startswith("$argon2id$")
    assert "correct horse" not in row.password_hash


def test_register_defaults_the_display_name_to_the_local_part(auth):
    response = auth.register("bob.smith@example.com")
    assert response.get_json()["user"]["display_name"] == "bob.smith"


def test_register_duplicate_email_is_409_whatever_the_case(app, auth):
    assert auth.register("alice@example.com").status_code == 201
    assert_error(auth.register("ALICE@example.com"), 409, "conflict", "email")
    assert len(_user_rows(app)) == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"is_admin": True}, "is_admin"), ({"role": "admin"}, "role"), ({"id": 1}, "id")],
)
def test_register_rejects_unknown_fields_like_role(app, auth, extra, field):
    error = assert_error(auth.register(**extra), 400, "validation_error", field)
    assert field in error["message"]
    assert _user_rows(app) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "long enough password"}, "email"),
        ({"email": "alice@example.com"}, "password"),
        ({"email": "not-an-email", "password": "long enough password"}, "email"),
        ({"email": "a@b", "password": "long enough password"}, "email"),
        ({"email": "a" * 250 + "@example.com", "password": "long enough password"}, "email"),
        ({"email": 42, "password": "long enough password"}, "email"),
        ({"email": "alice@example.com", "password": "short"}, "password"),
        ({"email": "alice@example.com", "password": ["list"]}, "password"),
        ({"email": "alice@example.com", "password": "x" * 1025}, "password"),
        ({"email": "a@example.com", "password": "long enough", "display_name": ""}, "display_name"),
        (
            {"email": "a@example.com", "password": "long enough", "display_name": "x" * 101},
            "display_name",
        ),
        (
            {"email": "a@example.com", "password": "long enough", "display_name": "a\x00b"},
            "display_name",
        ),
        (
            {"email": "a@example.com", "password": "long enough", "display_name": "\ud800"},
            "display_name",
        ),
    ],
)
def test_register_validates_each_field(app, client, body, field):
    response = client.post("/api/v1/auth/register", json=body)
    assert_error(response, 400, "validation_error", field)
    assert _user_rows(app) == []


def test_register_requires_a_json_content_type(client):
    response = client.post(
        "/api/v1/auth/register",
        data='{"email": "alice@example.com", "password": "long enough password"}',
        content_type="text/plain",
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"text"', "null", "[" * 50_000])
def test_register_rejects_bodies_that_are_not_a_json_object(client, data):
    response = client.post("/api/v1/auth/register", data=data, content_type="application/json")
    assert_error(response, 400, "validation_error")


def test_register_rejects_an_oversized_body_with_413(client):
    body = {"email": "alice@example.com", "password": "p" * 200_000}
    assert_error(client.post("/api/v1/auth/register", json=body), 413, "payload_too_large")


# --- login, refresh, me ---------------------------------------------------------------------


def test_login_returns_distinct_access_and_refresh_tokens(auth):
    auth.register()
    response = auth.login("ALICE@example.com")

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["email"] == "alice@example.com"
    access, refresh = claims(body["access_token"]), claims(body["refresh_token"])
    assert access["type"] == "access"
    assert refresh["type"] == "refresh"
    assert access["sub"] == refresh["sub"] == str(body["user"]["id"])
    assert pyjwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


@pytest.mark.parametrize(
    ("email", "password"),
    [("alice@example.com", "wrong password!"), ("nobody@example.com", "correct horse battery")],
)
def test_login_with_bad_credentials_is_401_without_saying_which(auth, email, password):
    auth.register()
    error = assert_error(auth.login(email, password), 401, "unauthorized")
    assert error["message"] == "Invalid email or password."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "alice@example.com"}, "password"),
        ({"password": "correct horse battery"}, "email"),
        ({"email": "alice@example.com", "password": 12345678901}, "password"),
        ({"email": "alice@example.com", "password": "\ud800 not encodable"}, "password"),
        ({"email": "alice\x00@example.com", "password": "correct horse battery"}, "email"),
        ({"email": "alice@example.com", "password": "x", "remember": True}, "remember"),
    ],
)
def test_login_validates_its_body(auth, client, body, field):
    auth.register()
    assert_error(client.post("/api/v1/auth/login", json=body), 400, "validation_error", field)


def test_timestamps_are_utc_whatever_the_session_time_zone(app, auth, client):
    with app.app_context():
        db.session.execute(text("ALTER ROLE CURRENT_USER SET timezone TO 'Asia/Kolkata'"))
        db.session.commit()
    try:
        auth.register()
        with app.app_context():
            db.engine.dispose()  # new connections pick up the role's new time zone
        tokens = auth.tokens()
        created_at = client.get("/api/v1/auth/me", headers=tokens.headers).get_json()["user"][
            "created_at"
        ]
        assert created_at.endswith("+00:00")
    finally:
        with app.app_context():
            db.session.execute(text("ALTER ROLE CURRENT_USER RESET timezone"))
            db.session.commit()
            db.engine.dispose()


def test_me_returns_the_current_user(auth, client):
    tokens = auth.signup()
    response = client.get("/api/v1/auth/me", headers=tokens.headers)
    assert response.status_code == 200
    assert response.get_json() == {"user": tokens.user}


def test_me_without_a_token_is_401(client):
    assert_error(client.get("/api/v1/auth/me"), 401, "unauthorized")


def test_refresh_issues_a_working_access_token(auth, client):
    tokens = auth.signup()
    response = client.post("/api/v1/auth/refresh", headers=auth.bearer(tokens.refresh))

    assert response.status_code == 200
    body = response.get_json()
    assert body["expires_in"] == 15 * 60
    assert claims(body["access_token"])["type"] == "access"
    me = client.get("/api/v1/auth/me", headers=auth.bearer(body["access_token"]))
    assert me.get_json()["user"]["id"] == tokens.user["id"]


def test_refresh_token_is_rejected_where_an_access_token_is_needed(auth, client):
    tokens = auth.signup()
    response = client.get("/api/v1/auth/me", headers=auth.bearer(tokens.refresh))
    assert_error(response, 401, "unauthorized")


def test_access_token_is_rejected_at_refresh(auth, client):
    tokens = auth.signup()
    response = client.post("/api/v1/auth/refresh", headers=auth.bearer(tokens.access))
    assert_error(response, 401, "unauthorized")


def test_token_signed_with_another_key_is_rejected(auth, client):
    tokens = auth.signup()
    forged = pyjwt.encode(claims(tokens.access), "another-key-" * 4, algorithm="HS256")
    assert_error(client.get("/api/v1/auth/me", headers=auth.bearer(forged)), 401, "unauthorized")


def test_token_with_alg_none_is_rejected(auth, client):
    tokens = auth.signup()
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(tokens.access))}."
    assert_error(client.get("/api/v1/auth/me", headers=auth.bearer(unsigned)), 401, "unauthorized")


def test_token_with_a_tampered_subject_is_rejected(auth, client):
    alice = auth.signup()
    auth.signup("mallory@example.com")
    header, _payload, signature = alice.access.split(".")
    payload = claims(alice.access) | {"sub": "2"}
    tampered = f"{header}.{b64(payload)}.{signature}"
    assert_error(client.get("/api/v1/auth/me", headers=auth.bearer(tampered)), 401, "unauthorized")


def test_expired_token_is_rejected(app, auth, client):
    auth.signup()
    with app.app_context():
        user = db.session.scalar(select(User))
        expired = create_access_token(identity=user, expires_delta=timedelta(seconds=-1))
    error = assert_error(
        client.get("/api/v1/auth/me", headers=auth.bearer(expired)), 401, "unauthorized"
    )
    assert "expired" in error["message"]


def test_disabled_user_cannot_log_in_and_loses_existing_tokens(app, auth, client):
    tokens = auth.signup()
    with app.app_context():
        db.session.get(User, tokens.user["id"]).is_active = False
        db.session.commit()

    error = assert_error(auth.login(), 403, "account_disabled")
    assert "disabled" in error["message"]
    # Only the right password learns that the account is disabled.
    assert_error(auth.login(password="not the password 1"), 401, "unauthorized")
    assert_error(client.get("/api/v1/auth/me", headers=tokens.headers), 401, "unauthorized")
    refresh = client.post("/api/v1/auth/refresh", headers=auth.bearer(tokens.refresh))
    assert_error(refresh, 401, "unauthorized")


def test_tokens_of_a_deleted_user_are_rejected(app, auth, client):
    tokens = auth.signup()
    with app.app_context():
        db.session.delete(db.session.get(User, tokens.user["id"]))
        db.session.commit()
    assert_error(client.get("/api/v1/auth/me", headers=tokens.headers), 401, "unauthorized")


# --- password policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("aaaaaaaaaaaa", "two kinds"),
        ("1234567890123", "two kinds"),
        ("ABCDEFGHIJKL", "two kinds"),
        ("!@#$%^&*()_+", "two kinds"),
        ("alice.smith@example.com", "email"),
        ("Alice.Smith@Example.com", "email"),
        ("alice.smith", "email"),
    ],
)
def test_register_refuses_weak_passwords_naming_the_rule(app, auth, password, rule):
    response = auth.register("alice.smith@example.com", password)
    error = assert_error(response, 400, "validation_error", "password")
    assert rule in error["message"]
    assert _user_rows(app) == []


@pytest.mark.parametrize(
    "password", ["correct horse battery", "Tr0ub4dor&3x", "passwordpassword1", "ÄÖÜäöüßÄÖÜ"]
)
def test_register_accepts_sensible_passwords(auth, password):
    assert auth.register(password=password).status_code == 201
    assert auth.login(password=password).status_code == 200


# --- profile --------------------------------------------------------------------------------


def test_patch_me_changes_the_display_name(auth, client):
    tokens = auth.signup()
    response = client.patch(
        "/api/v1/auth/me", json={"display_name": " Alice A. "}, headers=tokens.headers
    )

    assert response.status_code == 200
    assert response.get_json()["user"] == tokens.user | {"display_name": "Alice A."}
    me = client.get("/api/v1/auth/me", headers=tokens.headers)
    assert me.get_json()["user"]["display_name"] == "Alice A."


def test_patch_me_with_no_field_changes_nothing(auth, client):
    tokens = auth.signup()
    response = client.patch("/api/v1/auth/me", json={}, headers=tokens.headers)
    assert response.status_code == 200
    assert response.get_json()["user"] == tokens.user


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "admin"}, "role"),
        ({"is_admin": True}, "is_admin"),
        ({"is_active": True}, "is_active"),
        ({"email": "other@example.com"}, "email"),
        ({"display_name": "Bob", "password": "new password 1"}, "password"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": None}, "display_name"),
        ({"display_name": 7}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
    ],
)
def test_patch_me_refuses_other_fields_and_bad_values(app, auth, client, body, field):
    tokens = auth.signup()
    response = client.patch("/api/v1/auth/me", json=body, headers=tokens.headers)
    assert_error(response, 400, "validation_error", field)
    [row] = _user_rows(app)
    assert (row.role, row.email, row.display_name) == ("user", "alice@example.com", "alice")


def test_patch_me_needs_an_access_token(auth, client):
    tokens = auth.signup()
    response = client.patch(
        "/api/v1/auth/me", json={"display_name": "x"}, headers=auth.bearer(tokens.refresh)
    )
    assert_error(response, 401, "unauthorized")


# --- password change ------------------------------------------------------------------------

NEW_PASSWORD = "a brand new password 9"


def _change_password(client, tokens, **body):
    return client.post("/api/v1/auth/password", json=body, headers=tokens.headers)


def test_password_change_returns_new_tokens_and_swaps_the_password(app, auth, client):
    tokens = auth.signup()
    response = _change_password(
        client, tokens, current_password="correct horse battery", new_password=NEW_PASSWORD
    )

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert claims(body["access_token"])["ver"] == claims(tokens.access)["ver"] + 1
    assert_error(auth.login(), 401, "unauthorized")
    assert auth.login(password=NEW_PASSWORD).status_code == 200
    [row] = _user_rows(app)
    assert row.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"current_password": "wrong password 1", "new_password": NEW_PASSWORD},
            403,
            "current_password",
        ),
        (
            {"current_password": "correct horse battery", "new_password": "short"},
            400,
            "new_password",
        ),
        (
            {"current_password": "correct horse battery", "new_password": "a" * 12},
            400,
            "new_password",
        ),
        (
            {"current_password": "correct horse battery", "new_password": "alice@example.com"},
            400,
            "new_password",
        ),
        (
            {"current_password": "correct horse battery", "new_password": "correct horse battery"},
            400,
            "new_password",
        ),
        ({"new_password": NEW_PASSWORD}, 400, "current_password"),
        ({"current_password": "correct horse battery"}, 400, "new_password"),
        (
            {
                "current_password": "correct horse battery",
                "new_password": NEW_PASSWORD,
                "email": "x@example.com",
            },
            400,
            "email",
        ),
    ],
)
def test_password_change_refuses_bad_input_and_keeps_the_password(
    auth, client, body, status, field
):
    tokens = auth.signup()
    response = client.post("/api/v1/auth/password", json=body, headers=tokens.headers)
    assert_error(response, status, "forbidden" if status == 403 else "validation_error", field)
    # Nothing changed: the old password and the old token still work.
    assert auth.login().status_code == 200
    assert client.get("/api/v1/auth/me", headers=tokens.headers).status_code == 200


def test_create_admin_reset_password_revokes_the_admins_tokens(app, auth, client):
    admin = auth.admin()
    with app.app_context():
        accounts.ensure_admin(
            db.session, email="root@example.com", password=NEW_PASSWORD, reset_password=True
        )
    assert_error(client.get("/api/v1/auth/me", headers=admin.headers), 401, "unauthorized")
    assert auth.login("root@example.com", NEW_PASSWORD).status_code == 200
