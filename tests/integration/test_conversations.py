"""Conversation management: list and search, rename, delete, export, titles, ownership."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from werkzeug.routing import Rule

from tests.assertions import assert_error, bad_text_bodies
from tests.integration.auth_support import browser_login
from tests.integration.paging_support import all_pages
from webapp.app import create_app
from webapp.bot import ReplyRecord
from webapp.extensions import db
from webapp.models import Conversation, Message
from webapp.services import chat
from webapp.settings import Settings

pytestmark = pytest.mark.integration

CONVERSATIONS = "/api/v1/chat/conversations"
SSE = {"Accept": "text/event-stream"}


# --- helpers --------------------------------------------------------------------------------


def new_conversation(client, tokens, **body: Any) -> dict[str, Any]:
    response = client.post(CONVERSATIONS, json=body, headers=tokens.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["conversation"]


def url(conversation_id: int, suffix: str = "") -> str:
    return f"{CONVERSATIONS}/{conversation_id}{suffix}"


def add_messages(app, conversation_id: int, *contents: tuple[str, str]) -> None:
    """Store ``(role, content)`` messages directly, as if exchanged earlier."""
    with app.app_context():
        for role, content in contents:
            model = "offline" if role == "assistant" else None
            db.session.add(
                Message(conversation_id=conversation_id, role=role, content=content, model=model)
            )
        db.session.commit()


def set_updated_at(app, updated_at: datetime, *ids: int) -> None:
    with app.app_context():
        db.session.execute(
            update(Conversation).where(Conversation.id.in_(ids)).values(updated_at=updated_at)
        )
        db.session.commit()


def list_ids(client, tokens, **params: Any) -> list[int]:
    response = client.get(CONVERSATIONS, query_string=params, headers=tokens.headers)
    assert response.status_code == 200, response.get_json()
    return [c["id"] for c in response.get_json()["conversations"]]


def conversation_pages(client, tokens, **params: Any) -> list[list[int]]:
    """Follow ``next_cursor`` to the end; return the ids of each page."""
    pages = all_pages(client, CONVERSATIONS, tokens.headers, "conversations", **params)
    return [[c["id"] for c in page] for page in pages]


def conversation_state(app, conversation_id: int) -> tuple[Any, ...]:
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        assert conversation is not None
        rows = db.session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        messages = [(m.id, m.role, m.content) for m in rows]
        return conversation.title, conversation.updated_at, messages


@pytest.fixture
def mallory(auth):
    return auth.signup("mallory@example.com")


# --- listing and pagination -----------------------------------------------------------------


def test_pages_cover_every_conversation_once_newest_activity_first(app, client, alice, mallory):
    ids = [new_conversation(client, alice, title=f"c{n}")["id"] for n in range(5)]
    new_conversation(client, mallory, title="not alice's")

    pages = conversation_pages(client, alice, limit=2)

    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


def test_equal_timestamps_are_ordered_by_id_across_pages(app, client, alice):
    # Keyset pagination on updated_at alone would repeat or skip conversations here.
    ids = [new_conversation(client, alice)["id"] for _ in range(4)]
    same = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    set_updated_at(app, same, *ids)

    assert conversation_pages(client, alice, limit=1) == [[i] for i in reversed(ids)]


def test_a_page_neither_repeats_nor_skips_when_the_list_changes(app, client, alice):
    ids = [new_conversation(client, alice)["id"] for _ in range(4)]
    first = client.get(CONVERSATIONS, query_string={"limit": 2}, headers=alice.headers)
    body = first.get_json()
    assert [c["id"] for c in body["conversations"]] == [ids[3], ids[2]]

    # Meanwhile a conversation is added at the top and one already seen is deleted.
    new_conversation(client, alice)
    assert client.delete(url(ids[3]), headers=alice.headers).status_code == 204

    second = client.get(
        CONVERSATIONS,
        query_string={"limit": 2, "cursor": body["next_cursor"]},
        headers=alice.headers,
    ).get_json()
    assert [c["id"] for c in second["conversations"]] == [ids[1], ids[0]]
    assert second["next_cursor"] is None


def test_default_page_size_is_20_and_100_is_allowed(app, client, alice):
    ids = [new_conversation(client, alice)["id"] for _ in range(21)]
    assert [len(page) for page in conversation_pages(client, alice)] == [20, 1]
    assert list_ids(client, alice, limit=100) == list(reversed(ids))


def test_last_page_has_no_cursor(client, alice):
    assert client.get(CONVERSATIONS, headers=alice.headers).get_json() == {
        "conversations": [],
        "next_cursor": None,
    }
    only = new_conversation(client, alice)
    body = client.get(CONVERSATIONS, query_string={"limit": 1}, headers=alice.headers).get_json()
    assert [c["id"] for c in body["conversations"]] == [only["id"]]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=2.5", "limit"),
        ("limit=1&limit=2", "limit"),
        ("cursor=", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("q=" + "x" * 201, "q"),
        ("q=%00", "q"),
        ("page=2", "page"),
        ("sort=oldest", "sort"),
    ],
)
def test_list_refuses_bad_parameters_naming_them(client, alice, query, field):
    response = client.get(f"{CONVERSATIONS}?{query}", headers=alice.headers)
    assert_error(response, 400, "validation_error", field)


def test_a_cursor_from_another_user_shows_only_your_own(client, alice, mallory):
    mine = new_conversation(client, alice)
    for _ in range(2):
        new_conversation(client, mallory)
    cursor = client.get(
        CONVERSATIONS, query_string={"limit": 1}, headers=mallory.headers
    ).get_json()["next_cursor"]
    assert cursor is not None
    # A cursor is only a position: with alice's token it pages alice's list.
    assert list_ids(client, alice, cursor=cursor) == [mine["id"]]


# --- search ---------------------------------------------------------------------------------


def test_search_matches_titles_and_message_text_ignoring_case(app, client, alice, mallory):
    by_title = new_conversation(client, alice, title="Lisbon trip")
    by_user_text = new_conversation(client, alice, title="one")
    by_reply = new_conversation(client, alice, title="two")
    unrelated = new_conversation(client, alice, title="three")
    theirs = new_conversation(client, mallory, title="Lisbon for mallory")
    add_messages(app, by_user_text["id"], ("user", "What to see in LISBON?"))
    add_messages(app, by_reply["id"], ("user", "Capital of Portugal?"), ("assistant", "lisbon."))
    add_messages(app, unrelated["id"], ("user", "Porto"), ("assistant", "Porto is lovely."))
    add_messages(app, theirs["id"], ("user", "lisbon"))

    found = list_ids(client, alice, q="lisbon")

    assert sorted(found) == sorted([by_title["id"], by_user_text["id"], by_reply["id"]])
    assert list_ids(client, alice, q="  LiSbOn ") == found
    assert list_ids(client, alice, q="nowhere") == []
    # Blank means no filter.
    assert len(list_ids(client, alice, q="   ")) == 4


@pytest.mark.parametrize(
    ("query", "matching_title"),
    [("100%", "100% sure"), ("a_c", "a_c"), ("\\", "back\\slash"), ("%", "100% sure")],
)
def test_search_takes_like_wildcards_literally(client, alice, query, matching_title):
    titles = ["100% sure", "1000 sure", "a_c", "abc", "back\\slash", "plain"]
    ids = {title: new_conversation(client, alice, title=title)["id"] for title in titles}
    assert list_ids(client, alice, q=query) == [ids[matching_title]]


def test_search_pages_with_the_cursor(app, client, alice):
    matching = []
    for n in range(5):
        conversation = new_conversation(client, alice, title=f"c{n}")
        if n % 2 == 0:
            add_messages(app, conversation["id"], ("user", "needle in here"))
            matching.append(conversation["id"])
    # Adding messages directly left updated_at alone: creation order decides.
    assert conversation_pages(client, alice, q="needle", limit=2) == [matching[:0:-1], matching[:1]]


def test_search_finds_text_of_an_exchange_through_the_api(client, alice):
    conversation = new_conversation(client, alice)
    client.post(
        url(conversation["id"], "/messages"), json={"content": "zebra"}, headers=alice.headers
    )
    assert list_ids(client, alice, q="ZEBRA") == [conversation["id"]]
    # The offline model labels its replies: assistant text is searched too.
    assert list_ids(client, alice, q="offline model") == [conversation["id"]]


# --- rename ---------------------------------------------------------------------------------


def test_rename_trims_and_keeps_the_place_in_the_list(app, client, alice):
    older = new_conversation(client, alice, title="older")
    newer = new_conversation(client, alice, title="newer")

    response = client.patch(url(older["id"]), json={"title": "  Renamed  "}, headers=alice.headers)

    assert response.status_code == 200
    renamed = response.get_json()["conversation"]
    assert renamed == {**older, "title": "Renamed"}  # updated_at unchanged
    got = client.get(url(older["id"]), headers=alice.headers).get_json()["conversation"]
    assert got["title"] == "Renamed"
    assert list_ids(client, alice) == [newer["id"], older["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        *bad_text_bodies("title", max_length=200),
        ({"title": "two\nlines"}, "title"),
        ({"title": "ok", "user_id": 2}, "user_id"),
        ({"title": "ok", "updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
    ],
)
def test_rename_refuses_bad_bodies_naming_the_field(app, client, alice, body, field):
    conversation = new_conversation(client, alice, title="kept")
    response = client.patch(url(conversation["id"]), json=body, headers=alice.headers)
    assert_error(response, 400, "validation_error", field)
    assert conversation_state(app, conversation["id"])[0] == "kept"


def test_rename_needs_a_json_object(client, alice):
    conversation = new_conversation(client, alice)
    form = client.patch(url(conversation["id"]), data="title=x", headers=alice.headers)
    assert_error(form, 415, "unsupported_media_type")
    array = client.patch(url(conversation["id"]), json=["x"], headers=alice.headers)
    assert_error(array, 400, "validation_error")


def test_rename_of_a_missing_conversation_is_404(client, alice):
    response = client.patch(url(999), json={"title": "x"}, headers=alice.headers)
    assert_error(response, 404, "not_found")


# --- delete ---------------------------------------------------------------------------------


def test_delete_removes_the_conversation_and_its_messages(app, client, alice):
    doomed = new_conversation(client, alice, title="doomed")
    kept = new_conversation(client, alice, title="kept")
    add_messages(app, doomed["id"], ("user", "a"), ("assistant", "b"))
    add_messages(app, kept["id"], ("user", "c"))

    response = client.delete(url(doomed["id"]), headers=alice.headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(client.get(url(doomed["id"]), headers=alice.headers), 404, "not_found")
    assert list_ids(client, alice) == [kept["id"]]
    with app.app_context():
        remaining = db.session.execute(
            select(Message.conversation_id, func.count()).group_by(Message.conversation_id)
        ).all()
    assert remaining == [(kept["id"], 1)]
    # Gone is gone: a second delete finds nothing.
    assert_error(client.delete(url(doomed["id"]), headers=alice.headers), 404, "not_found")


def test_cookie_sessions_need_the_csrf_token_to_rename_or_delete(app, auth, client):
    auth.register()
    session = browser_login(client)
    conversation = client.post(CONVERSATIONS, json={}, headers=session.csrf).get_json()
    cid = conversation["conversation"]["id"]

    assert_error(client.patch(url(cid), json={"title": "x"}), 403, "csrf_failed")
    assert_error(client.delete(url(cid)), 403, "csrf_failed")
    assert conversation_state(app, cid)[0] is None

    assert client.patch(url(cid), json={"title": "x"}, headers=session.csrf).status_code == 200
    assert client.delete(url(cid), headers=session.csrf).status_code == 204


# --- export ---------------------------------------------------------------------------------


@pytest.fixture
def exchanged(app, client, alice) -> dict[str, Any]:
    conversation = new_conversation(client, alice, title="Café plans")
    add_messages(
        app,
        conversation["id"],
        ("user", "Where should we go?"),
        ("assistant", "Try **Lisbon**:\n\n- trams\n- tiles"),
    )
    return conversation


@pytest.mark.parametrize("query", ["", "?format=json"])
def test_export_as_json(client, alice, exchanged, query):
    response = client.get(url(exchanged["id"], "/export") + query, headers=alice.headers)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="conversation-{exchanged["id"]}-cafe-plans.json"'
    document = json.loads(response.get_data(as_text=True))
    assert document["format"] == "chatbot.conversation"
    assert document["version"] == 1
    datetime.fromisoformat(document["exported_at"])
    conversation = document["conversation"]
    assert {k: conversation[k] for k in exchanged} == exchanged
    assert [(m["role"], m["content"], m["model"]) for m in conversation["messages"]] == [
        ("user", "Where should we go?", None),
        ("assistant", "Try **Lisbon**:\n\n- trams\n- tiles", "offline"),
    ]
    for message in conversation["messages"]:
        assert datetime.fromisoformat(message["created_at"]).tzinfo is not None


def test_export_as_markdown(client, alice, exchanged):
    response = client.get(url(exchanged["id"], "/export?format=md"), headers=alice.headers)

    assert response.status_code == 200
    assert response.mimetype == "text/markdown"
    assert response.mimetype_params["charset"] == "utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="conversation-{exchanged["id"]}-cafe-plans.md"'
    text = response.get_data(as_text=True)
    assert text.startswith("# Café plans\n")
    user = text.index("## User · ")
    assistant = text.index("## Assistant (offline) · ")
    assert user < text.index("Where should we go?") < assistant
    # The reply's own Markdown is kept as written.
    assert text.endswith("\n\nTry **Lisbon**:\n\n- trams\n- tiles\n")


def test_export_of_an_empty_untitled_conversation(client, alice):
    conversation = new_conversation(client, alice)
    response = client.get(url(conversation["id"], "/export?format=md"), headers=alice.headers)
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("# Untitled conversation\n")
    assert (
        f'filename="conversation-{conversation["id"]}.md"'
        in response.headers["Content-Disposition"]
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=pdf", "format"),
        ("format=", "format"),
        ("format=JSON", "format"),
        ("format=md&format=json", "format"),
        ("download=1", "download"),
    ],
)
def test_export_refuses_bad_parameters_naming_them(client, alice, exchanged, query, field):
    response = client.get(url(exchanged["id"], f"/export?{query}"), headers=alice.headers)
    assert_error(response, 400, "validation_error", field)


def test_export_of_a_missing_conversation_is_404(client, alice):
    assert_error(client.get(url(999, "/export"), headers=alice.headers), 404, "not_found")


# --- automatic titles -----------------------------------------------------------------------


def test_first_exchange_names_an_untitled_conversation(client, alice):
    conversation = new_conversation(client, alice)
    content = "Could you explain how keyset pagination\ndiffers from offset pagination in SQL?"

    response = client.post(
        url(conversation["id"], "/messages"), json={"content": content}, headers=alice.headers
    )

    assert response.status_code == 201
    got = client.get(url(conversation["id"]), headers=alice.headers).get_json()["conversation"]
    assert got["title"] == "Could you explain how keyset pagination differs from offset…"
    # Later messages do not rename it.
    client.post(
        url(conversation["id"], "/messages"), json={"content": "And?"}, headers=alice.headers
    )
    again = client.get(url(conversation["id"]), headers=alice.headers).get_json()["conversation"]
    assert again["title"] == got["title"]


def test_a_streamed_first_reply_names_the_conversation_too(client, alice):
    conversation = new_conversation(client, alice)
    response = client.post(
        url(conversation["id"], "/messages"),
        json={"content": "Streamed hello"},
        headers={**alice.headers, **SSE},
    )
    assert response.status_code == 200
    assert "event: done" in response.get_data(as_text=True)
    got = client.get(url(conversation["id"]), headers=alice.headers).get_json()["conversation"]
    assert got["title"] == "Streamed hello"


def test_title_comes_with_the_reply_not_with_the_message(app, client, alice):
    conversation = new_conversation(client, alice)
    with app.app_context():
        chat.add_user_message(
            db.session,
            user_id=alice.user["id"],
            conversation_id=conversation["id"],
            content="first",
        )
        chat.add_user_message(
            db.session,
            user_id=alice.user["id"],
            conversation_id=conversation["id"],
            content="second",
        )
        # A message without a reply (a failed generation, say) leaves the title alone...
        assert db.session.get(Conversation, conversation["id"]).title is None
        store = chat.SqlHistoryStore(db.session())
        store.save_reply(
            conversation["id"],
            ReplyRecord("a reply", "complete", "test", tokens_in=1, tokens_out=1, latency_ms=1),
        )
    # ...and the reply that follows names it after the first message, not the latest.
    assert conversation_state(app, conversation["id"])[0] == "first"


def test_a_title_given_by_the_user_is_never_replaced(client, alice):
    titled = new_conversation(client, alice, title="Mine")
    renamed = new_conversation(client, alice)
    client.patch(url(renamed["id"]), json={"title": "Chosen"}, headers=alice.headers)
    for conversation in (titled, renamed):
        client.post(
            url(conversation["id"], "/messages"), json={"content": "hello"}, headers=alice.headers
        )
    assert {
        c["title"]
        for c in client.get(CONVERSATIONS, headers=alice.headers).get_json()["conversations"]
    } == {"Mine", "Chosen"}


# --- ownership: every route with a conversation id ------------------------------------------

# Building an app connects to nothing, so the chat service's routes can be listed while the
# tests are collected: a route added later is covered without touching this file.
_UNIT_SETTINGS = Settings.from_env(
    {
        "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "collection-only-secret-key-" + "x" * 32,
    }
)
_CHAT_RULES: list[Rule] = [
    rule
    for rule in create_app("chat", _UNIT_SETTINGS).url_map.iter_rules()
    if "conversation_id" in rule.arguments
]
_ROUTES = sorted(
    {(method, rule.rule) for rule in _CHAT_RULES for method in rule.methods or ()}
    - {(m, r.rule) for r in _CHAT_RULES for m in ("HEAD", "OPTIONS")}
)
# A body that would be valid for the owner, so that a 404 is about ownership rather than a 400
# for the body. A new route whose body differs needs an entry here, or this test fails.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", ""): {"title": "stolen"},
    ("POST", "/messages"): {"content": "let me in"},
}


def _body_for(method: str, rule: str) -> dict[str, Any] | None:
    suffix = rule.split("conversation_id>", 1)[1]
    return _BODIES.get((method, suffix))


def test_the_ownership_test_sees_every_conversation_route():
    # The positive control: the enumeration finds the routes known today.
    one = "/api/v1/chat/conversations/<id:conversation_id>"
    assert {
        ("GET", one),
        ("PATCH", one),
        ("DELETE", one),
        ("GET", f"{one}/export"),
        ("POST", f"{one}/messages"),
    } <= set(_ROUTES)


@pytest.mark.parametrize("accept", [{}, SSE], ids=["json", "event-stream"])
@pytest.mark.parametrize(("method", "rule"), _ROUTES, ids=[f"{m} {r}" for m, r in _ROUTES])
def test_another_users_conversation_is_404(app, make_app, alice, mallory, method, rule, accept):
    client = make_app("chat").test_client()
    conversation = new_conversation(client, alice, title="private")
    add_messages(app, conversation["id"], ("user", "secret"), ("assistant", "reply"))
    before = conversation_state(app, conversation["id"])

    rule_object = next(r for r in _CHAT_RULES if r.rule == rule and method in (r.methods or ()))
    values = dict.fromkeys(rule_object.arguments, 1) | {"conversation_id": conversation["id"]}
    _, path = rule_object.build(values)
    body = _body_for(method, rule)
    response = client.open(
        path,
        method=method,
        headers={**mallory.headers, **accept},
        **({"json": body} if body is not None else {}),
    )

    assert_error(response, 404, "not_found")
    # Nothing was read into the answer, and nothing changed: no rename, no delete, no message.
    assert "secret" not in response.get_data(as_text=True)
    assert conversation_state(app, conversation["id"]) == before
