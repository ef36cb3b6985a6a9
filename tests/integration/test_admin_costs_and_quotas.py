"""Usage reports price the replies of priced catalogue models; admins set per-user quotas."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.assertions import assert_error, assert_names_field
from webapp.extensions import db
from webapp.models import AuditEvent, Conversation, Message

pytestmark = pytest.mark.integration

USAGE = "/api/v1/admin/usage"


def store_replies(app, user_id: int, replies: list[tuple[str, int, int]]) -> None:
    """Store one conversation of ``user_id`` with a reply per (model, tokens_in, tokens_out)."""
    with app.app_context():
        conversation = Conversation(user_id=user_id, title="Priced")
        db.session.add(conversation)
        db.session.flush()
        for model, tokens_in, tokens_out in replies:
            db.session.add(Message(conversation_id=conversation.id, role="user", content="q"))
            db.session.add(
                Message(
                    conversation_id=conversation.id,
                    role="assistant",
                    content="a",
                    model=model,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    status="complete",
                )
            )
        db.session.commit()
        db.session.remove()


def test_costs_per_model_and_per_user(app, client, auth, fake_openai):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    bob = auth.signup("bob@example.com")
    headers = admin.headers
    provider = {"name": "local", "base_url": fake_openai.base_url}
    assert client.post("/api/v1/admin/providers", json=provider, headers=headers).status_code == 201
    for name, price_in, price_out in (("priced", "0.15", "0.6"), ("input-only", "2", None)):
        body = {
            "provider": "local",
            "name": name,
            "upstream_id": name,
            "price_input_per_mtok": price_in,
            "price_output_per_mtok": price_out,
        }
        assert client.post("/api/v1/admin/models", json=body, headers=headers).status_code == 201
    store_replies(
        app,
        alice.user["id"],
        [("priced", 1000, 200), ("priced", 3, 7), ("offline", 50, 50), ("input-only", 10, 99)],
    )
    store_replies(app, bob.user["id"], [("offline", 10, 10)])

    report = client.get(USAGE, headers=headers).get_json()

    # (1003 x 0.15 + 207 x 0.6) / 1M, and 10 x 2 / 1M (no output price: output costs nothing).
    costs = {m["model"]: m["cost"] for m in report["models"]}
    assert costs == {"priced": "0.00027465", "input-only": "0.00002", "offline": None}
    users = {u["email"]: u["cost"] for u in report["top_users"]}
    assert users == {
        "alice@example.com": "0.00029465",
        "bob@example.com": None,
    }


# --- per-user daily token quota -----------------------------------------------------------------


def test_daily_token_quota_is_read_and_set(app, client, auth):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    url = f"/api/v1/admin/users/{alice.user['id']}"
    assert client.get(url, headers=admin.headers).get_json()["user"]["daily_token_quota"] is None

    for quota in (5000, 0, None):
        response = client.patch(url, json={"daily_token_quota": quota}, headers=admin.headers)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["user"]["daily_token_quota"] == quota
        assert response.get_json()["user"]["role"] == "user"  # untouched
    listed = client.get("/api/v1/admin/users", headers=admin.headers).get_json()["users"]
    assert {u["email"]: u["daily_token_quota"] for u in listed} == {
        "alice@example.com": None,
        "root@example.com": None,
    }
    # Both at once, and the same value again (recorded once).
    both = client.patch(
        url, json={"role": "admin", "daily_token_quota": 7}, headers=admin.headers
    ).get_json()["user"]
    assert (both["role"], both["daily_token_quota"]) == ("admin", 7)
    client.patch(url, json={"daily_token_quota": 7}, headers=admin.headers)

    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "admin.quota_changed")
            .order_by(AuditEvent.id)
        ).all()
        changes = [(e.details["from"], e.details["to"]) for e in events]
        db.session.remove()
    assert changes == [(None, 5000), (5000, 0), (0, None), (None, 7)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"daily_token_quota": -1}, "daily_token_quota"),
        ({"daily_token_quota": 2**31}, "daily_token_quota"),
        ({"daily_token_quota": "5"}, "daily_token_quota"),
        ({"daily_token_quota": 1.5}, "daily_token_quota"),
        ({"daily_token_quota": True}, "daily_token_quota"),
        ({"role": None}, "role"),
        ({"role": None, "daily_token_quota": 5}, "role"),
    ],
)
def test_bad_quotas_are_refused(client, auth, body, field):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    url = f"/api/v1/admin/users/{alice.user['id']}"
    assert_names_field(client.patch(url, json=body, headers=admin.headers), field)


def test_quota_of_an_unknown_user_is_a_404(client, auth):
    admin = auth.admin()
    response = client.patch(
        "/api/v1/admin/users/999999", json={"daily_token_quota": 5}, headers=admin.headers
    )
    assert_error(response, 404, "not_found")
