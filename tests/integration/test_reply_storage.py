"""Storing a finished reply in one statement: what it derives in SQL matches the Python rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from langchain_core.messages import HumanMessage
from sqlalchemy import DateTime, literal, select

from tests.integration.generation_support import new_conversation
from webapp.bot import ReplyRecord
from webapp.extensions import db
from webapp.models import Conversation, Message, isoformat_utc
from webapp.services import chat
from webapp.services.chat import _isoformat_utc

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 23, 4, 5, 7, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_timestamps_are_formatted_in_sql_as_the_api_formats_them(app, value):
    with app.app_context():
        formatted = db.session.scalar(
            select(_isoformat_utc(literal(value, DateTime(timezone=True))))
        )
    assert formatted == isoformat_utc(value)


def streaming_reply(conversation_id: int, *questions: str) -> int:
    for content in questions:
        db.session.add(Message(conversation_id=conversation_id, role="user", content=content))
    reply = Message(
        conversation_id=conversation_id, role="assistant", content="", status="streaming"
    )
    db.session.add(reply)
    db.session.commit()
    return reply.id


def test_a_history_without_the_first_question_still_names_the_conversation_after_it(
    app, client, alice
):
    conversation_id = new_conversation(client, alice)
    with app.app_context():
        reply_id = streaming_reply(conversation_id, "first", "second")
        # The history handed over starts after the first question (a long conversation).
        store = chat.SqlHistoryStore(
            db.session(),
            reply_id=reply_id,
            user_id=alice.user["id"],
            history=[HumanMessage("second")],
        )
        stored = store.save_reply(
            conversation_id,
            ReplyRecord("a reply", "complete", "test", tokens_in=1, tokens_out=1, latency_ms=1),
        )
        assert stored is not None
        assert (stored["id"], stored["status"], stored["content"]) == (
            reply_id,
            "complete",
            "a reply",
        )
        assert db.session.get(Conversation, conversation_id, populate_existing=True).title == (
            "first"
        )


def test_a_reply_to_a_deleted_conversation_stores_nothing(app, client, alice):
    conversation_id = new_conversation(client, alice)
    with app.app_context():
        reply_id = streaming_reply(conversation_id, "hello")
        store = chat.SqlHistoryStore(
            db.session(),
            reply_id=reply_id,
            user_id=alice.user["id"],
            history=[HumanMessage("hello")],
            queue_completed=True,
        )
        db.session.delete(db.session.get(Conversation, conversation_id))
        db.session.commit()
        stored = store.save_reply(
            conversation_id,
            ReplyRecord("a reply", "complete", "test", tokens_in=1, tokens_out=1, latency_ms=1),
        )
        assert stored is None
        assert db.session.get(Message, reply_id) is None
