"""The per-user daily token quota: checked before the model is called, 429 with when it resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert

from tests.integration.generation_support import (
    SSE,
    message_rows,
    messages_url,
    new_conversation,
)
from tests.integration.test_openapi_served import Contract
from webapp.extensions import db
from webapp.models import Conversation, DailyUsage
from webapp.services.quota import QuotaExceededError, next_reset, tokens_used

pytestmark = pytest.mark.integration

# The fake server counts a prompt's words and streams 8 tokens: "Hello there" costs 2 + 8.
FIRST_REPLY_TOKENS = 10


def post(client, tokens, conversation_id: int, content: str = "Hello there", **headers: str):
    return client.post(
        messages_url(conversation_id),
        json={"content": content},
        headers={**tokens.headers, **headers},
    )


def used(app, user_id: int) -> int:
    with app.app_context():
        total = tokens_used(db.session, user_id=user_id)
        db.session.remove()
        return total


def test_an_exhausted_quota_gives_429_before_the_model_is_called(app, chat, alice, fake_openai):
    client = chat(LLM_DAILY_TOKEN_QUOTA=str(FIRST_REPLY_TOKENS)).test_client()
    cid = new_conversation(client, alice)
    assert post(client, alice, cid).status_code == 201
    assert used(app, alice.user["id"]) == FIRST_REPLY_TOKENS
    requests_before = len(fake_openai.chat_requests())
    rows_before = len(message_rows(app, cid))

    refused = [
        post(client, alice, cid, "One more?"),
        post(client, alice, cid, "Streamed?", **SSE),
        client.post(f"/api/v1/chat/conversations/{cid}/regenerate", headers=alice.headers),
    ]

    now = datetime.now(UTC)
    for response in refused:
        assert response.status_code == 429
        assert response.mimetype == "application/json"
        error = response.get_json()["error"]
        assert error["code"] == "quota_exceeded"
        assert (error["limit"], error["used"]) == (FIRST_REPLY_TOKENS, FIRST_REPLY_TOKENS)
        assert "resets at 00:00 UTC" in error["message"]
        reset = next_reset(now)
        assert datetime.fromisoformat(error["resets_at"]) == reset
        retry_after = int(response.headers["Retry-After"])
        assert retry_after == error["retry_after"]
        assert abs(retry_after - (reset - now).total_seconds()) < 5
    # Nothing reached the model server and nothing was stored.
    assert len(fake_openai.chat_requests()) == requests_before
    assert len(message_rows(app, cid)) == rows_before


def test_the_quota_response_matches_the_document(chat, alice):
    client = chat(LLM_DAILY_TOKEN_QUOTA="1").test_client()
    api = Contract("chat", client)
    cid = new_conversation(client, alice)
    path = "/api/v1/chat/conversations/{conversation_id}/messages"
    url = messages_url(cid)
    api.call("post", path, 201, url=url, json={"content": "hi"}, headers=alice.headers)
    api.call("post", path, 429, url=url, json={"content": "hi"}, headers=alice.headers)


def test_the_quota_is_per_user(chat, auth, alice):
    client = chat(LLM_DAILY_TOKEN_QUOTA=str(FIRST_REPLY_TOKENS)).test_client()
    post(client, alice, new_conversation(client, alice))
    bob = auth.signup("bob@example.com")

    assert post(client, bob, new_conversation(client, bob)).status_code == 201


def test_deleting_the_conversation_does_not_give_tokens_back(app, chat, alice):
    client = chat(LLM_DAILY_TOKEN_QUOTA=str(FIRST_REPLY_TOKENS)).test_client()
    cid = new_conversation(client, alice)
    post(client, alice, cid)
    with app.app_context():
        db.session.execute(delete(Conversation).where(Conversation.id == cid))
        db.session.commit()

    response = post(client, alice, new_conversation(client, alice))

    assert response.status_code == 429


def test_cached_replies_cost_nothing(app, chat, alice, fake_openai):
    client = chat(LLM_DAILY_TOKEN_QUOTA="1000").test_client()
    post(client, alice, new_conversation(client, alice), "Same question")
    spent = used(app, alice.user["id"])

    reply = post(client, alice, new_conversation(client, alice), "Same question").get_json()

    assert reply["reply"]["cached"] is True
    assert used(app, alice.user["id"]) == spent


def test_usage_of_earlier_days_does_not_count(app, chat, alice):
    client = chat(LLM_DAILY_TOKEN_QUOTA="100").test_client()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    with app.app_context():
        db.session.execute(
            insert(DailyUsage).values(
                user_id=alice.user["id"], day=yesterday, tokens_in=10**6, tokens_out=10**6
            )
        )
        db.session.commit()

    assert post(client, alice, new_conversation(client, alice)).status_code == 201


def test_a_zero_quota_means_no_quota(app, chat, alice):
    client = chat(LLM_DAILY_TOKEN_QUOTA="0").test_client()
    with app.app_context():
        db.session.execute(
            insert(DailyUsage).values(
                user_id=alice.user["id"],
                day=datetime.now(UTC).date(),
                tokens_in=10**9,
                tokens_out=10**9,
            )
        )
        db.session.commit()

    assert post(client, alice, new_conversation(client, alice)).status_code == 201


def test_the_reset_is_the_next_utc_midnight():
    evening = datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)
    error = QuotaExceededError(limit=5, used=7, now=evening)

    assert next_reset(evening) == datetime(2026, 1, 1, tzinfo=UTC)
    assert error.retry_after == 30
    assert error.resets_at == "2026-01-01T00:00:00+00:00"
    assert "in 0 h 01 min" in error.message
