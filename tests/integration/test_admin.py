"""The admin service: statistics, for admins only."""

from __future__ import annotations

import pytest

from webapp.extensions import db
from webapp.models import User

pytestmark = pytest.mark.integration

STATS = "/api/v1/admin/stats"


def test_stats_without_a_token_is_401(client):
    response = client.get(STATS)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_stats_for_an_ordinary_user_is_403(auth, client):
    user = auth.signup()
    response = client.get(STATS, headers=user.headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_stats_for_an_admin_counts_everything(auth, client):
    admin = auth.admin()
    alice = auth.signup("alice@example.com")
    auth.signup("bob@example.com")
    conversation = client.post("/api/v1/chat/conversations", headers=alice.headers).get_json()
    client.post(
        f"/api/v1/chat/conversations/{conversation['conversation']['id']}/messages",
        json={"content": "hello"},
        headers=alice.headers,
    )

    response = client.get(STATS, headers=admin.headers)

    assert response.status_code == 200
    assert response.get_json() == {"users": 3, "conversations": 1, "messages": 2}


def test_a_demoted_admin_loses_access_with_the_same_token(app, auth, client):
    admin = auth.admin()
    assert client.get(STATS, headers=admin.headers).status_code == 200
    with app.app_context():
        db.session.get(User, admin.user["id"]).role = "user"
        db.session.commit()
    assert client.get(STATS, headers=admin.headers).status_code == 403


def test_refresh_token_is_not_accepted_by_admin_routes(auth, client):
    admin = auth.admin()
    assert client.get(STATS, headers=auth.bearer(admin.refresh)).status_code == 401


@pytest.mark.parametrize(
    ("service", "reachable"),
    [
        ("auth", {"/api/v1/auth/me"}),
        ("chat", {"/api/v1/chat/conversations"}),
        ("admin", {STATS}),
    ],
)
def test_each_service_serves_only_its_own_routes(make_app, service, reachable):
    client = make_app(service).test_client()
    for url in ("/api/v1/auth/me", "/api/v1/chat/conversations", STATS):
        status = client.get(url).status_code
        # Without a token, an existing route answers 401; a missing one 404.
        assert status == (401 if url in reachable else 404), (service, url, status)
