"""Helpers for the generation, streaming and quota tests: an app answering through the fake
OpenAI server, reading Server-Sent Events from the test client, and waiting for a reply."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import insert, select

from tests.fakes.openai_server import FakeOpenAIServer
from tests.waiting import EVENT_TIMEOUT, wait_for
from webapp.extensions import db
from webapp.models import Message

SSE = {"Accept": "text/event-stream"}
CONVERSATIONS = "/api/v1/chat/conversations"


@dataclass(frozen=True)
class Event:
    """One server-sent event (``id`` None when the event carried none)."""

    id: int | None
    event: str
    data: Any


def chat_app(make_app: Callable[..., Flask], server: FakeOpenAIServer, **env: str) -> Flask:
    """Return an app whose bot answers through the fake server (``LLM_MODEL=chat-model``)."""
    settings = {
        "OPENAI_BASE_URL": server.base_url,
        "LLM_MODEL": "chat-model",
        # A slow (loaded) machine must not turn a reply into a timeout; hang tests set theirs.
        "LLM_TIMEOUT": f"{EVENT_TIMEOUT:g}",
        **env,
    }
    return make_app("all", **settings)


def new_conversation(client, tokens, **body: Any) -> int:
    """Create a conversation through the API; return its id."""
    response = client.post(CONVERSATIONS, json=body, headers=tokens.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["conversation"]["id"]


def messages_url(conversation_id: int) -> str:
    """URL to post messages to."""
    return f"{CONVERSATIONS}/{conversation_id}/messages"


def reply_url(reply_id: int, suffix: str = "") -> str:
    """URL of a reply (``/events``, ``/stop``)."""
    return f"/api/v1/chat/replies/{reply_id}{suffix}"


def parse_block(block: str) -> Event | None:
    """Parse one event block; None for a comment (keepalive)."""
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        assert name not in fields, f"repeated field {name} in {block!r}"
        fields[name] = value
    if not fields:
        return None
    assert set(fields) <= {"id", "event", "data"}, block
    event_id = int(fields["id"]) if "id" in fields else None
    return Event(event_id, fields["event"], json.loads(fields["data"]))


def parse_sse(text: str) -> list[Event]:
    """Parse a whole event stream (keepalives dropped)."""
    events = (parse_block(block) for block in text.split("\n\n") if block.strip())
    return [event for event in events if event is not None]


def iter_events(response) -> Iterator[Event]:
    """Yield the events of a streamed test-client response as they arrive."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event = parse_block(block)
            if event is not None:
                yield event


def read_until(events: Iterator[Event], stop: Callable[[list[Event]], bool]) -> list[Event]:
    """Read events until ``stop`` says so (or the stream ends)."""
    seen: list[Event] = []
    for event in events:
        seen.append(event)
        if stop(seen):
            break
    return seen


def tokens_in(events: list[Event]) -> list[Event]:
    """The token events."""
    return [event for event in events if event.event == "token"]


def message_rows(app: Flask, conversation_id: int | None = None) -> list[Message]:
    """The stored messages, oldest first."""
    query = select(Message).order_by(Message.id)
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    with app.app_context():
        rows = list(db.session.scalars(query))
        db.session.remove()
        return rows


def reply_row(app: Flask, reply_id: int) -> Message | None:
    """The stored assistant message, freshly read."""
    with app.app_context():
        row = db.session.get(Message, reply_id)
        db.session.remove()
        return row


def insert_streaming_reply(app: Flask, conversation_id: int, question: str | None = None) -> int:
    """Store what a killed worker leaves: a streaming reply whose lease nobody renews.

    Args:
        app: The app whose database to write.
        conversation_id: The conversation the reply belongs to.
        question: When given, the user message stored before the reply.

    Returns:
        The reply's id.
    """
    with app.app_context():
        if question is not None:
            db.session.execute(
                insert(Message).values(
                    conversation_id=conversation_id, role="user", content=question
                )
            )
        reply_id = db.session.scalar(
            insert(Message)
            .values(
                conversation_id=conversation_id, role="assistant", content="", status="streaming"
            )
            .returning(Message.id)
        )
        db.session.commit()
        db.session.remove()
        return reply_id


def wait_until_finished(app: Flask, reply_id: int) -> Message:
    """Wait until a reply is no longer streaming; return it."""

    def finished() -> Message | None:
        row = reply_row(app, reply_id)
        return row if row is not None and row.status != "streaming" else None

    return wait_for(finished, f"end of reply {reply_id}")
