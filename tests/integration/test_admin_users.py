"""User management in the admin API: list and search, details, role, password, deletion."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from tests.assertions import assert_names_field
from tests.integration.conftest import DEFAULT_PASSWORD
from tests.integration.generation_support import messages_url, new_conversation
from tests.integration.paging_support import all_pages
from tests.waiting import EVENT_TIMEOUT
from webapp.extensions import db
from webapp.models import AuditEvent, Conversation, DailyUsage, Message, User

pytestmark = pytest.mark.integration

USERS = "/api/v1/admin/users"
NEW_PASSWORD = "a fresh Passphrase 42"


def user_url(user_id: int, suffix: str = "") -> str:
    return f"{USERS}/{user_id}{suffix}"


def audit_actions(app) -> list[tuple[str, int | None, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.target_id).order_by(
                AuditEvent.id
            )
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows]


# --- listing ------------------------------------------------------------------------------------


def test_list_searches_filters_and_pages(client, auth):
    admin = auth.admin()
    for name in ("alice", "bob", "carol", "dave"):
        auth.register(f"{name}@example.com", display_name=f"{name.title()} Example")
    auth.register("eve@other.org", display_name="Eve Bobson")
    dave = auth.tokens("dave@example.com")
    client.post(user_url(dave.user["id"], "/disable"), headers=admin.headers)

    def emails(query: str = "", headers=admin.headers) -> list[str]:
        response = client.get(f"{USERS}{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return [u["email"] for u in response.get_json()["users"]]

    assert emails() == [
        "root@example.com",
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "eve@other.org",
    ]
    # In the email or the display name, ignoring case; wildcards are literal.
    assert emails("?q=BOB") == ["bob@example.com", "eve@other.org"]
    assert emails("?q=other.org") == ["eve@other.org"]
    assert emails("?q=%25") == []
    assert emails("?active=false") == ["dave@example.com"]
    assert emails("?role=admin") == ["root@example.com"]
    assert emails("?role=user&active=true&q=example.com") == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]

    # Keyset pages of two: every user once, in order.
    pages = all_pages(client, USERS, admin.headers, "users", limit=2)
    assert all(len(page) <= 2 for page in pages)
    assert [u["email"] for page in pages for u in page] == emails()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=-1", "cursor"),
        ("?active=yes", "active"),
        ("?role=root", "role"),
        ("?q=" + "x" * 201, "q"),
        ("?sort=email", "sort"),
        ("?limit=1&limit=2", "limit"),
    ],
)
def test_list_refuses_bad_parameters_naming_them(client, auth, query, field):
    admin = auth.admin()
    assert_names_field(client.get(f"{USERS}{query}", headers=admin.headers), field)


# --- one user -----------------------------------------------------------------------------------


def test_details_carry_a_usage_summary(client, auth, alice):
    admin = auth.admin()
    cid = new_conversation(client, alice)
    for text in ("Hello", "Again"):
        response = client.post(messages_url(cid), json={"content": text}, headers=alice.headers)
        assert response.status_code == 201, response.get_json()
    replies = [
        m
        for m in client.get(f"/api/v1/chat/conversations/{cid}", headers=alice.headers).get_json()[
            "conversation"
        ]["messages"]
        if m["role"] == "assistant"
    ]

    response = client.get(user_url(alice.user["id"]), headers=admin.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["email"] == "alice@example.com"
    usage = body["usage"]
    assert usage["conversations"] == 1
    assert (usage["messages"], usage["replies"]) == (2, 2)
    assert usage["tokens_in"] == sum(r["tokens_in"] for r in replies)
    assert usage["tokens_out"] == sum(r["tokens_out"] for r in replies)
    assert usage["last_message_at"] == replies[-1]["created_at"]
    assert client.get(user_url(999999), headers=admin.headers).status_code == 404


# --- role ---------------------------------------------------------------------------------------


def test_promote_and_demote_are_audited(app, client, auth, alice):
    admin = auth.admin()
    url = user_url(alice.user["id"])

    promoted = client.patch(url, json={"role": "admin"}, headers=admin.headers)
    assert promoted.status_code == 200
    assert promoted.get_json()["user"]["role"] == "admin"
    assert client.get("/api/v1/admin/stats", headers=alice.headers).status_code == 200
    # Setting the role it already has changes and records nothing.
    assert client.patch(url, json={"role": "admin"}, headers=admin.headers).status_code == 200
    demoted = client.patch(url, json={"role": "user"}, headers=admin.headers)
    assert demoted.get_json()["user"]["role"] == "user"

    actions = [a for a in audit_actions(app) if a[0] == "admin.role_changed"]
    assert actions == [
        ("admin.role_changed", admin.user["id"], str(alice.user["id"])),
        ("admin.role_changed", admin.user["id"], str(alice.user["id"])),
    ]
    events = client.get(
        "/api/v1/admin/audit?action=admin.role_changed", headers=admin.headers
    ).get_json()["events"]
    assert [(e["details"]["from"], e["details"]["to"]) for e in events] == [
        ("admin", "user"),
        ("user", "admin"),
    ]
    assert events[0]["actor_email"] == "root@example.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "role"), ({"role": "root"}, "role"), ({"role": 1}, "role"), ({"email": "x"}, "email")],
)
def test_patch_refuses_bad_bodies(client, auth, alice, body, field):
    admin = auth.admin()
    assert_names_field(
        client.patch(user_url(alice.user["id"]), json=body, headers=admin.headers), field
    )


# --- the last active admin ----------------------------------------------------------------------


def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(app, client, auth):
    admin = auth.admin()
    url = user_url(admin.user["id"])
    attempts = [
        client.patch(url, json={"role": "user"}, headers=admin.headers),
        client.post(f"{url}/disable", headers=admin.headers),
        client.delete(url, headers=admin.headers),
    ]
    for response in attempts:
        assert response.status_code == 409, response.get_json()
        assert response.get_json()["error"]["code"] == "conflict"
    with app.app_context():
        user = db.session.get(User, admin.user["id"])
        assert (user.role, user.is_active) == ("admin", True)
        db.session.remove()
    # Nothing that did not happen is in the audit log.
    assert not [a for a in audit_actions(app) if a[0].startswith("admin.")]


def test_a_disabled_admin_does_not_count_as_the_other_admin(client, auth):
    admin = auth.admin()
    other = auth.admin("second@example.com")
    disabled = client.post(user_url(other.user["id"], "/disable"), headers=admin.headers)
    assert disabled.status_code == 200
    assert (
        client.patch(
            user_url(admin.user["id"]), json={"role": "user"}, headers=admin.headers
        ).status_code
        == 409
    )
    # With another active admin, an admin may step down, and may then be deleted.
    client.post(user_url(other.user["id"], "/enable"), headers=admin.headers)
    other = auth.tokens("second@example.com")
    response = client.patch(
        user_url(admin.user["id"]), json={"role": "user"}, headers=other.headers
    )
    assert response.status_code == 200
    assert client.delete(user_url(admin.user["id"]), headers=other.headers).status_code == 200


# --- password reset -----------------------------------------------------------------------------


def test_a_set_password_revokes_every_session(app, client, auth, alice):
    admin = auth.admin()
    second_session = auth.tokens()

    response = client.post(
        user_url(alice.user["id"], "/password"),
        json={"password": NEW_PASSWORD},
        headers=admin.headers,
    )

    assert response.status_code == 200
    assert "password" not in response.get_json()
    for tokens in (alice, second_session):
        assert client.get("/api/v1/auth/me", headers=tokens.headers).status_code == 401
        refreshed = client.post("/api/v1/auth/refresh", headers=auth.bearer(tokens.refresh))
        assert refreshed.status_code == 401
    assert auth.login(password=DEFAULT_PASSWORD).status_code == 401
    assert auth.login(password=NEW_PASSWORD).status_code == 200
    assert ("admin.password_reset", admin.user["id"], str(alice.user["id"])) in audit_actions(app)


def test_a_generated_password_is_returned_once_and_never_logged(app, client, auth, alice, caplog):
    admin = auth.admin()
    caplog.set_level(logging.DEBUG)

    response = client.post(user_url(alice.user["id"], "/password"), headers=admin.headers)

    assert response.status_code == 200
    password = response.get_json()["password"]
    assert len(password) >= 20
    assert auth.login(password=password).status_code == 200
    assert password not in caplog.text
    with app.app_context():
        details = db.session.scalars(select(AuditEvent.details)).all()
        db.session.remove()
    assert password not in repr(details)
    assert {"email": "alice@example.com", "generated": True} in details


def test_a_password_breaking_the_policy_is_refused_and_nothing_changes(app, client, auth, alice):
    admin = auth.admin()
    response = client.post(
        user_url(alice.user["id"], "/password"), json={"password": "short"}, headers=admin.headers
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "password"
    assert client.get("/api/v1/auth/me", headers=alice.headers).status_code == 200
    assert not [a for a in audit_actions(app) if a[0] == "admin.password_reset"]


# --- deletion -----------------------------------------------------------------------------------


def test_deleting_a_user_deletes_their_conversations_and_keeps_the_audit_trail(
    app, client, auth, alice
):
    admin = auth.admin()
    bob = auth.signup("bob@example.com")
    for tokens in (alice, bob):
        cid = new_conversation(client, tokens)
        client.post(messages_url(cid), json={"content": "Hi"}, headers=tokens.headers)

    response = client.delete(user_url(alice.user["id"]), headers=admin.headers)

    assert response.status_code == 200
    assert response.get_json()["deleted"] == {
        "id": alice.user["id"],
        "email": "alice@example.com",
        "conversations": 1,
        "messages": 2,
    }
    assert client.get("/api/v1/auth/me", headers=alice.headers).status_code == 401
    assert client.get(user_url(alice.user["id"]), headers=admin.headers).status_code == 404
    with app.app_context():
        owners = db.session.scalars(select(Conversation.user_id)).all()
        messages = db.session.scalar(select(func.count()).select_from(Message))
        usage_owners = db.session.scalars(select(DailyUsage.user_id)).all()
        db.session.remove()
    assert owners == [bob.user["id"]]
    assert messages == 2
    assert set(usage_owners) <= {bob.user["id"]}
    # The history of the deleted account stays, with its email.
    events = client.get(
        f"/api/v1/admin/audit?target_type=user&target_id={alice.user['id']}", headers=admin.headers
    ).get_json()["events"]
    assert events[0]["action"] == "admin.user_deleted"
    assert events[0]["details"]["email"] == "alice@example.com"
    assert client.delete(user_url(alice.user["id"]), headers=admin.headers).status_code == 404


# --- a user's conversations, read-only ----------------------------------------------------------


def test_an_admin_reads_a_users_conversations_as_the_user_sees_them(client, auth, alice):
    admin = auth.admin()
    bob = auth.signup("bob@example.com")
    cid = new_conversation(client, alice, title="Plans")
    client.post(messages_url(cid), json={"content": "Hello"}, headers=alice.headers)
    new_conversation(client, bob)

    listed = client.get(user_url(alice.user["id"], "/conversations"), headers=admin.headers)
    assert listed.status_code == 200
    own = client.get("/api/v1/chat/conversations", headers=alice.headers).get_json()
    assert listed.get_json() == own

    one = client.get(user_url(alice.user["id"], f"/conversations/{cid}"), headers=admin.headers)
    assert one.status_code == 200
    assert (
        one.get_json()
        == client.get(f"/api/v1/chat/conversations/{cid}", headers=alice.headers).get_json()
    )
    # The read is on record.
    viewed = client.get(
        "/api/v1/admin/audit?action=admin.conversation_viewed", headers=admin.headers
    ).get_json()["events"]
    assert [(e["actor_id"], e["target_type"], e["target_id"], e["details"]) for e in viewed] == [
        (admin.user["id"], "conversation", str(cid), {"user_id": alice.user["id"]})
    ]
    # Bob's user id with Alice's conversation: not found, as for Bob himself.
    wrong_owner = user_url(bob.user["id"], f"/conversations/{cid}")
    assert client.get(wrong_owner, headers=admin.headers).status_code == 404
    assert client.get(user_url(999999, "/conversations"), headers=admin.headers).status_code == 404


@pytest.mark.parametrize("action", ["demote", "disable", "delete"])
def test_two_admins_removing_each_other_at_once_leave_one(app, auth, action):
    first = auth.admin()
    second = auth.admin("second@example.com")
    barrier = threading.Barrier(2)

    def remove(actor, target) -> int:
        client = app.test_client()
        url = user_url(target.user["id"])
        barrier.wait(timeout=EVENT_TIMEOUT)
        if action == "demote":
            return client.patch(url, json={"role": "user"}, headers=actor.headers).status_code
        if action == "disable":
            return client.post(f"{url}/disable", headers=actor.headers).status_code
        return client.delete(url, headers=actor.headers).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(lambda pair: remove(*pair), [(first, second), (second, first)]))

    # One wins; the other is refused: 409 (last admin) or, once removed itself, 401/403.
    assert statuses[0] == 200
    assert statuses[1] in (401, 403, 409)
    with app.app_context():
        admins = db.session.scalars(
            select(User.email).where(User.role == "admin", User.is_active.is_(True))
        ).all()
        db.session.remove()
    assert len(admins) == 1
