"""The chat service: conversations, messages, JSON and streamed replies, ownership, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field
from sqlalchemy import select

from tests.assertions import assert_error, bad_text_bodies
from tests.waiting import EVENT_TIMEOUT
from webapp.bot import Bot
from webapp.chat.runtime import BOT_EXTENSION, get_bot
from webapp.extensions import db
from webapp.models import Conversation, Message

pytestmark = pytest.mark.integration

SSE = {"Accept": "text/event-stream"}


# --- helpers --------------------------------------------------------------------------------


def new_conversation(client, tokens, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/chat/conversations", json=body, headers=tokens.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["conversation"]


def messages_url(conversation_id: int) -> str:
    return f"/api/v1/chat/conversations/{conversation_id}/messages"


def message_rows(app, conversation_id: int | None = None) -> list[Message]:
    query = select(Message).order_by(Message.id)
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    with app.app_context():
        return list(db.session.scalars(query))


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Parse an event stream into ``{"id", "event", "data"}`` dicts (data JSON-decoded)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            assert name not in fields, f"repeated field {name} in {block!r}"
            fields[name] = value
        assert set(fields) == {"id", "event", "data"}, block
        events.append(
            {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
        )
    return events


@pytest.fixture
def mallory(auth):
    return auth.signup("mallory@example.com")


# --- fake chat models for the failure and streaming tests -----------------------------------


class FailingModel(BaseChatModel):
    """Fails, optionally after streaming a few tokens."""

    tokens_before_failure: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "failing-test-model"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs):
        raise RuntimeError("model exploded")

    def _stream(
        self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs
    ) -> Iterator[ChatGenerationChunk]:
        for text in self.tokens_before_failure:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
        raise RuntimeError("model exploded mid-stream")


class GatedModel(BaseChatModel):
    """Streams one token, then waits for the test to open the gate before the rest.

    If anything between the model and the client buffered the reply, the client would never
    see the first token while the gate is closed, and the wait would time out.
    """

    gate: Any
    opened_in_time: list[bool] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "gated-test-model"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="first second"))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for index, text in enumerate(["first ", "second"]):
            if index == 1:
                self.opened_in_time.append(self.gate.wait(timeout=EVENT_TIMEOUT))
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk


# --- conversations --------------------------------------------------------------------------


def test_create_conversation_with_and_without_a_title(app, client, alice):
    titled = new_conversation(client, alice, title="  Trip planning ")
    assert titled["title"] == "Trip planning"
    assert set(titled) == {
        "id",
        "title",
        "model",
        "system_prompt",
        "temperature",
        "created_at",
        "updated_at",
    }

    # No body at all is fine: every field is optional.
    response = client.post("/api/v1/chat/conversations", headers=alice.headers)
    assert response.status_code == 201
    assert response.get_json()["conversation"]["title"] is None

    with app.app_context():
        owners = db.session.scalars(select(Conversation.user_id)).all()
    assert owners == [alice.user["id"], alice.user["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"x": 1}, "x"),
    ],
)
def test_create_conversation_validates_the_title(app, client, alice, body, field):
    response = client.post("/api/v1/chat/conversations", json=body, headers=alice.headers)
    assert_error(response, 400, "validation_error", field)


def test_conversations_require_a_token(client):
    assert_error(client.get("/api/v1/chat/conversations"), 401, "unauthorized")
    assert_error(client.post("/api/v1/chat/conversations"), 401, "unauthorized")


def test_list_shows_own_conversations_most_recently_active_first(client, alice, mallory):
    first = new_conversation(client, alice, title="first")
    second = new_conversation(client, alice, title="second")
    new_conversation(client, mallory, title="not alice's")

    listed = client.get("/api/v1/chat/conversations", headers=alice.headers).get_json()
    assert [c["id"] for c in listed["conversations"]] == [second["id"], first["id"]]

    # A new message makes the older conversation the most recent one.
    client.post(messages_url(first["id"]), json={"content": "hello"}, headers=alice.headers)
    listed = client.get("/api/v1/chat/conversations", headers=alice.headers).get_json()
    assert [c["id"] for c in listed["conversations"]] == [first["id"], second["id"]]


def test_get_conversation_returns_its_messages_in_order(client, alice):
    conversation = new_conversation(client, alice)
    client.post(messages_url(conversation["id"]), json={"content": "one"}, headers=alice.headers)
    client.post(messages_url(conversation["id"]), json={"content": "two"}, headers=alice.headers)

    response = client.get(f"/api/v1/chat/conversations/{conversation['id']}", headers=alice.headers)
    assert response.status_code == 200
    body = response.get_json()["conversation"]
    assert body["title"] == "one"  # named after its first message
    assert [(m["role"], m["content"][:3]) for m in body["messages"]] == [
        ("user", "one"),
        ("assistant", "[of"),
        ("user", "two"),
        ("assistant", "[of"),
    ]


@pytest.mark.parametrize("conversation_id", [999, 2**31, 10**30])
def test_missing_conversation_is_404(client, alice, conversation_id):
    url = f"/api/v1/chat/conversations/{conversation_id}"
    assert_error(client.get(url, headers=alice.headers), 404, "not_found")
    response = client.post(f"{url}/messages", json={"content": "hi"}, headers=alice.headers)
    assert_error(response, 404, "not_found")


# --- replies as JSON ------------------------------------------------------------------------


def test_post_message_stores_it_and_the_offline_reply(app, client, alice):
    conversation = new_conversation(client, alice)
    response = client.post(
        messages_url(conversation["id"]), json={"content": "Hello bot"}, headers=alice.headers
    )

    assert response.status_code == 201
    body = response.get_json()
    message, reply = body["message"], body["reply"]
    assert message["role"] == "user"
    assert message["content"] == "Hello bot"
    assert message["model"] is None
    assert reply["role"] == "assistant"
    assert reply["model"] == "offline"
    assert reply["content"].startswith("[offline model]")
    assert "Hello bot" in reply["content"]
    assert reply["tokens_in"] > 0
    assert reply["tokens_out"] > 0

    rows = message_rows(app, conversation["id"])
    assert [(r.id, r.role, r.content, r.model) for r in rows] == [
        (message["id"], "user", "Hello bot", None),
        (reply["id"], "assistant", reply["content"], "offline"),
    ]
    assert rows[1].tokens_out == reply["tokens_out"]


def test_reply_sees_the_stored_history(client, alice):
    conversation = new_conversation(client, alice)
    url = messages_url(conversation["id"])
    client.post(url, json={"content": "first"}, headers=alice.headers)
    reply = client.post(url, json={"content": "second"}, headers=alice.headers).get_json()["reply"]
    # The offline model counts the user turns it was given: the history came from the table.
    assert "turn 2" in reply["content"]


def test_bot_is_built_once_per_app(app, client, alice, monkeypatch):
    builds = []
    original = Bot.from_settings.__func__

    def counting_from_settings(cls, settings, **kwargs):
        builds.append(settings)
        return original(cls, settings, **kwargs)

    monkeypatch.setattr(Bot, "from_settings", classmethod(counting_from_settings))
    conversation = new_conversation(client, alice)
    for content in ("one", "two", "three"):
        response = client.post(
            messages_url(conversation["id"]), json={"content": content}, headers=alice.headers
        )
        assert response.status_code == 201
    assert len(builds) == 1
    assert get_bot(app) is app.extensions[BOT_EXTENSION]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        *bad_text_bodies("content", max_length=8000, blank="   \n "),
        ({"content": "a\x00b"}, "content"),
        ({"content": "hi", "role": "assistant"}, "role"),
    ],
)
def test_post_message_validates_content(app, client, alice, body, field):
    conversation = new_conversation(client, alice)
    response = client.post(messages_url(conversation["id"]), json=body, headers=alice.headers)
    assert_error(response, 400, "validation_error", field)
    assert message_rows(app) == []


def test_post_message_accepts_the_maximum_length(app, client, alice):
    conversation = new_conversation(client, alice)
    content = "é" * 8000
    response = client.post(
        messages_url(conversation["id"]), json={"content": content}, headers=alice.headers
    )
    assert response.status_code == 201
    assert message_rows(app)[0].content == content


def test_post_message_that_is_not_json_is_415(app, client, alice):
    conversation = new_conversation(client, alice)
    response = client.post(
        messages_url(conversation["id"]),
        data="content=hello",
        content_type="application/x-www-form-urlencoded",
        headers=alice.headers,
    )
    assert_error(response, 415, "unsupported_media_type")
    assert message_rows(app) == []


def test_post_message_too_big_is_413(app, client, alice):
    conversation = new_conversation(client, alice)
    response = client.post(
        messages_url(conversation["id"]), json={"content": "x" * 200_000}, headers=alice.headers
    )
    assert_error(response, 413, "payload_too_large")
    assert message_rows(app) == []


def test_failed_generation_is_502_and_keeps_the_user_message(app, client, alice):
    app.extensions[BOT_EXTENSION] = Bot(FailingModel(), model_name="failing")
    conversation = new_conversation(client, alice)

    response = client.post(
        messages_url(conversation["id"]), json={"content": "still here?"}, headers=alice.headers
    )

    assert_error(response, 502, "upstream_error")
    assert "exploded" not in response.get_data(as_text=True)
    # The user's message is kept; the reply says it failed.
    assert [(r.role, r.content, r.status) for r in message_rows(app)] == [
        ("user", "still here?", "complete"),
        ("assistant", "", "failed"),
    ]
    # The conversation stays usable: the next reply works once the model does, and the failed
    # reply is not part of the history it sees.
    app.extensions[BOT_EXTENSION] = Bot.from_settings(app.extensions["settings"])
    retry = client.post(
        messages_url(conversation["id"]), json={"content": "again"}, headers=alice.headers
    )
    assert retry.status_code == 201
    assert "turn 2" in retry.get_json()["reply"]["content"]
    assert [(r.role, r.status) for r in message_rows(app)] == [
        ("user", "complete"),
        ("assistant", "failed"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]


# --- replies as Server-Sent Events ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers"), [("", SSE), ("?stream=1", {})], ids=["accept-header", "query"]
)
def test_stream_sends_tokens_then_done_and_stores_the_reply(app, client, alice, query, headers):
    conversation = new_conversation(client, alice)
    response = client.post(
        messages_url(conversation["id"]) + query,
        json={"content": "Stream this please"},
        headers={**alice.headers, **headers},
    )

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Cache-Control"] == "no-cache"
    events = parse_sse(response.get_data(as_text=True))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "message"
    assert kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"}
    assert len(kinds[1:-1]) >= 3
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))

    user_message, done = events[0]["data"], events[-1]["data"]
    streamed = "".join(e["data"]["text"] for e in events[1:-1])
    rows = message_rows(app, conversation["id"])
    assert [(r.id, r.role) for r in rows] == [
        (user_message["id"], "user"),
        (done["id"], "assistant"),
    ]
    assert user_message["content"] == "Stream this please"
    assert streamed == done["content"] == rows[1].content
    assert done["model"] == rows[1].model == "offline"


def test_stream_delivers_tokens_before_generation_finishes(app, client, alice):
    gate = threading.Event()
    model = GatedModel(gate=gate)
    app.extensions[BOT_EXTENSION] = Bot(model, model_name="gated")
    conversation = new_conversation(client, alice)

    response = client.post(
        messages_url(conversation["id"]),
        json={"content": "hi"},
        headers={**alice.headers, **SSE},
        buffered=False,
    )
    received = ""
    try:
        for chunk in response.response:
            received += chunk.decode() if isinstance(chunk, bytes) else chunk
            if "event: token" in received:
                # The first token reached the client while the model still waits to write the
                # second: nothing on the way buffers the stream.
                gate.set()
    finally:
        response.close()

    assert model.opened_in_time == [True]
    events = parse_sse(received)
    assert [e["event"] for e in events] == ["message", "token", "token", "done"]
    assert events[-1]["data"]["content"] == "first second"


@pytest.mark.parametrize("tokens_before_failure", [[], ["partial ", "reply "]])
def test_stream_failure_sends_an_error_event_and_keeps_the_user_message(
    app, client, alice, tokens_before_failure
):
    app.extensions[BOT_EXTENSION] = Bot(
        FailingModel(tokens_before_failure=tokens_before_failure), model_name="failing"
    )
    conversation = new_conversation(client, alice)

    response = client.post(
        messages_url(conversation["id"]),
        json={"content": "hello?"},
        headers={**alice.headers, **SSE},
    )

    assert response.status_code == 200
    events = parse_sse(response.get_data(as_text=True))
    assert events[0]["event"] == "message"
    assert [e["data"]["text"] for e in events[1:-1]] == tokens_before_failure
    assert events[-1]["event"] == "error"
    assert events[-1]["data"]["error"]["code"] == "upstream_error"
    assert "exploded" not in json.dumps(events[-1]["data"])
    # The user's message is stored; so is what was streamed, marked failed.
    assert [(r.role, r.content, r.status) for r in message_rows(app)] == [
        ("user", "hello?", "complete"),
        ("assistant", "".join(tokens_before_failure), "failed"),
    ]
