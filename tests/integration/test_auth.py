"""The auth service: registration, login, tokens, and everything they must refuse."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import select, text

from webapp.extensions import db
from webapp.models import User

pytestmark = pytest.mark.integration


def _user_rows(app) -> list[User]:
    with app.app_context():
        return list(db.session.scalars(select(User).order_by(User.id)))


def _b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    return error


# --- registration ---------------------------------------------------------------------------


def test_register_creates_a_plain_user_with_a_hashed_password(app, auth):
    response = auth.register("Alice@Example.COM", display_name="Alice")

    assert response.status_code == 201
    user = response.get_json()["user"]
    assert set(user) == {"id", "email", "display_name", "role", "created_at"}
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
    access, refresh = _claims(body["access_token"]), _claims(body["refresh_token"])
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
    assert _claims(body["access_token"])["type"] == "access"
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
    forged = pyjwt.encode(_claims(tokens.access), "another-key-" * 4, algorithm="HS256")
    assert_error(client.get("/api/v1/auth/me", headers=auth.bearer(forged)), 401, "unauthorized")


def test_token_with_alg_none_is_rejected(auth, client):
    tokens = auth.signup()
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(tokens.access))}."
    assert_error(client.get("/api/v1/auth/me", headers=auth.bearer(unsigned)), 401, "unauthorized")


def test_token_with_a_tampered_subject_is_rejected(auth, client):
    alice = auth.signup()
    auth.signup("mallory@example.com")
    header, _payload, signature = alice.access.split(".")
    claims = _claims(alice.access) | {"sub": "2"}
    tampered = f"{header}.{_b64(claims)}.{signature}"
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

    assert_error(auth.login(), 401, "unauthorized")
    assert_error(client.get("/api/v1/auth/me", headers=tokens.headers), 401, "unauthorized")
    refresh = client.post("/api/v1/auth/refresh", headers=auth.bearer(tokens.refresh))
    assert_error(refresh, 401, "unauthorized")


def test_tokens_of_a_deleted_user_are_rejected(app, auth, client):
    tokens = auth.signup()
    with app.app_context():
        db.session.delete(db.session.get(User, tokens.user["id"]))
        db.session.commit()
    assert_error(client.get("/api/v1/auth/me", headers=tokens.headers), 401, "unauthorized")
