"""One account per e-mail address, however it is typed: registration, login, limits, the CLI."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.integration.conftest import DEFAULT_PASSWORD
from webapp.commands import ADMIN_PASSWORD_ENV
from webapp.extensions import db
from webapp.models import User

pytestmark = pytest.mark.integration

FULL_WIDTH_ADMIN = "\uff41\uff44\uff4d\uff49\uff4e@example.com"
LOOK_ALIKES = [
    FULL_WIDTH_ADMIN,
    "\uff41\uff44\uff4d\uff49\uff4e\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
    "admin@exam\u200bple.com",
    "admin@EXAMPLE.COM\u3000",
]


def _emails(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(User.email).order_by(User.id)))


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_look_alike_of_an_existing_address_cannot_be_registered(app, auth, look_alike):
    auth.admin("admin@example.com")
    response = auth.register(look_alike, "another password 42")
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"] == {
        "code": "conflict",
        "field": "email",
        "message": "email is already registered",
    }
    assert _emails(app) == ["admin@example.com"]


def test_an_address_is_stored_in_canonical_form(app, auth):
    response = auth.register("\uff22\uff4f\uff42@Ex\u00c4mple.COM")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user"]["email"] == "bob@ex\u00e4mple.com"
    assert _emails(app) == ["bob@ex\u00e4mple.com"]
    # The ASCII (IDNA) spelling of the domain is the same address.
    assert auth.register("bob@xn--exmple-cua.com").status_code == 409


@pytest.mark.parametrize(
    "address", ["ad\u200bmin@example.com", "admin\u202e@example.com", "ad\u00a0min@example.com"]
)
def test_an_address_with_invisible_characters_is_refused(app, auth, address):
    response = auth.register(address)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == "email"
    assert _emails(app) == []


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_login_with_a_look_alike_spelling_reaches_the_account(auth, look_alike):
    auth.admin("admin@example.com")
    response = auth.login(look_alike, DEFAULT_PASSWORD)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["email"] == "admin@example.com"


def test_look_alike_spellings_share_the_per_account_login_limit(make_app, auth):
    app = make_app(LOGIN_RATE_LIMIT="2 per minute")
    client = app.test_client()
    auth.admin("admin@example.com")
    wrong = "not the password 1"
    statuses = [
        client.post(
            "/api/v1/auth/login",
            json={"email": email, "password": wrong},
            # Three addresses: only the per-account limit can refuse the third attempt.
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n, email in enumerate(["admin@example.com", FULL_WIDTH_ADMIN, LOOK_ALIKES[1]])
    ]
    assert statuses == [401, 401, 429]


def test_create_admin_with_a_look_alike_promotes_the_existing_account(app, runner, auth):
    auth.register("admin@example.com", "the user's own password")
    result = runner.invoke(
        args=["create-admin", "--email", FULL_WIDTH_ADMIN],
        env={ADMIN_PASSWORD_ENV: "admin password 123"},
    )
    assert result.exit_code == 0, result.output
    assert "Promoted existing user admin@example.com" in result.output
    assert _emails(app) == ["admin@example.com"]
