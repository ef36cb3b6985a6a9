"""Generating replies through the whole stack with the real OpenAI client against the fake
server: what each reply records, fallback, cache, failures, regenerate, concurrency limits."""

from __future__ import annotations

import pytest

from tests.fakes.openai_server import reply_text, reply_tokens
from tests.integration.generation_support import (
    SSE,
    insert_streaming_reply,
    message_rows,
    messages_url,
    new_conversation,
    parse_sse,
    reply_row,
    reply_url,
    tokens_in,
    wait_until_finished,
)
from tests.integration.test_metrics import scrape, value
from tests.integration.test_openapi_served import Contract
from tests.waiting import EVENT_TIMEOUT, wait_for
from webapp.llm.factory import MAX_RETRIES

pytestmark = pytest.mark.integration

ONE = "/api/v1/chat/conversations/{conversation_id}"


def post(client, tokens, conversation_id: int, content: str = "Hello there", **kwargs):
    headers = {**tokens.headers, **kwargs.pop("headers", {})}
    return client.post(
        messages_url(conversation_id), json={"content": content}, headers=headers, **kwargs
    )


# --- what a reply records ---------------------------------------------------------------------


def test_a_reply_records_model_tokens_latency_and_how_it_was_made(chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=6, token_delay=0.005)
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = post(client, alice, cid)

    assert response.status_code == 201, response.get_json()
    reply = response.get_json()["reply"]
    assert reply["content"] == reply_text("chat-model", 6)
    assert reply["model"] == "chat-model"
    assert reply["status"] == "complete"
    assert (reply["tokens_in"], reply["tokens_out"]) == (2, 6)  # from the server's usage
    assert reply["latency_ms"] >= 25  # five gaps of 5 ms between tokens
    assert (reply["cached"], reply["fallback"]) == (False, False)
    assert len(fake_openai.chat_requests()) == 1


def test_json_and_started_replies_match_the_document(chat, alice, fake_openai):
    client = chat().test_client()
    api = Contract("chat", client)
    cid = new_conversation(client, alice)
    url = messages_url(cid)
    path = f"{ONE}/messages"

    api.call("post", path, 201, url=url, json={"content": "hi"}, headers=alice.headers)
    started = api.call(
        "post", path, 202, url=url + "?wait=0", json={"content": "again"}, headers=alice.headers
    ).get_json()
    reply_id = started["reply"]["id"]
    assert started["reply"]["status"] == "streaming"
    assert started["links"]["events"] == reply_url(reply_id, "/events")
    wait_until_finished(client.application, reply_id)
    reply_path = "/api/v1/chat/replies/{reply_id}"
    api.call("get", reply_path, 200, url=reply_url(reply_id), headers=alice.headers)
    api.call(
        "post",
        "/api/v1/chat/replies/{reply_id}/stop",
        200,
        url=reply_url(reply_id, "/stop"),
        headers=alice.headers,
    )
    api.call(
        "post",
        f"{ONE}/regenerate",
        201,
        url=f"/api/v1/chat/conversations/{cid}/regenerate",
        headers=alice.headers,
    )


def test_prefer_respond_async_answers_202_and_the_reply_can_be_fetched(chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=5, token_delay=0.01)
    app = chat()
    client = app.test_client()
    cid = new_conversation(client, alice)

    response = post(client, alice, cid, headers={"Prefer": "respond-async"})

    assert response.status_code == 202
    reply_id = response.get_json()["reply"]["id"]
    assert response.headers["Location"] == reply_url(reply_id)

    def fetched():
        body = client.get(reply_url(reply_id), headers=alice.headers).get_json()["reply"]
        return body if body["status"] != "streaming" else None

    assert wait_for(fetched, "end of the reply")["content"] == reply_text("chat-model", 5)


# --- fallback ---------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["error500", "error429"])
def test_the_fallback_answers_when_the_primary_fails(chat, alice, fake_openai, failure):
    app = chat(LLM_MODEL=failure, LLM_FALLBACK_MODEL="backup-model")
    client = app.test_client()
    cid = new_conversation(client, alice)
    before = scrape(client)

    response = post(client, alice, cid)

    assert response.status_code == 201, response.get_json()
    reply = response.get_json()["reply"]
    assert reply["content"] == reply_text("backup-model", 8)
    assert (reply["model"], reply["fallback"]) == ("backup-model", True)
    assert reply["status"] == "complete"
    assert len(fake_openai.chat_requests(failure)) == 1 + MAX_RETRIES
    assert len(fake_openai.chat_requests("backup-model")) == 1
    after = scrape(client)
    assert value(after, "llm_fallbacks_total") - value(before, "llm_fallbacks_total") == 1
    for model, outcome in ((failure, "error"), ("backup-model", "success")):
        labels = {"model": model, "outcome": outcome}
        assert (
            value(after, "llm_requests_total", **labels)
            - value(before, "llm_requests_total", **labels)
            == 1
        ), (model, outcome)


def test_the_fallback_answers_when_the_primary_hangs_past_the_timeout(chat, alice, fake_openai):
    # The hang outlasts any wait of the test: only the app's timeout can end it. (The backup
    # answers under the same timeout, so it is not as short as the app's tests could make it.)
    fake_openai.configure("slow-primary", mode="hang", hang_seconds=EVENT_TIMEOUT)
    app = chat(LLM_MODEL="slow-primary", LLM_FALLBACK_MODEL="backup-model", LLM_TIMEOUT="1")
    client = app.test_client()
    cid = new_conversation(client, alice)

    response = post(client, alice, cid)

    assert response.status_code == 201, response.get_json()
    reply = response.get_json()["reply"]
    assert (reply["model"], reply["fallback"]) == ("backup-model", True)
    hung = fake_openai.chat_requests("slow-primary")
    assert len(hung) == 1 + MAX_RETRIES
    for request in hung:
        assert request.wait_finished()
        # The app gave up on each attempt while the server still hung: its timeout worked.
        assert request.client_disconnected


# --- the cache --------------------------------------------------------------------------------


def test_a_cache_hit_is_streamed_and_does_not_reach_the_model_server(chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=7)
    client = chat().test_client()
    first = post(client, alice, new_conversation(client, alice), "What is a fox?").get_json()
    requests_before = len(fake_openai.chat_requests())
    metrics_before = scrape(client)

    # The same question in another conversation: the same trimmed history, the same key.
    response = client.post(
        messages_url(new_conversation(client, alice)),
        json={"content": "What is a fox?"},
        headers={**alice.headers, **SSE},
    )

    events = parse_sse(response.get_data(as_text=True))
    assert len(fake_openai.chat_requests()) == requests_before
    assert [e.data["text"] for e in tokens_in(events)] == reply_tokens("chat-model", 7)
    done = events[-1]
    assert done.event == "done"
    assert done.data["cached"] is True
    assert done.data["content"] == first["reply"]["content"]
    assert done.data["model"] == "chat-model"
    after = scrape(client)
    assert value(after, "llm_cache_hits_total") - value(metrics_before, "llm_cache_hits_total") == 1


def test_no_cache_when_the_ttl_is_zero(chat, alice, fake_openai):
    client = chat(LLM_CACHE_TTL="0").test_client()
    for _ in range(2):
        reply = post(client, alice, new_conversation(client, alice)).get_json()["reply"]
        assert reply["cached"] is False
    assert len(fake_openai.chat_requests()) == 2


# --- failures ---------------------------------------------------------------------------------


def test_the_user_message_is_stored_even_when_generation_fails(app, chat, alice, fake_openai):
    chat_app = chat(LLM_MODEL="error500")
    client = chat_app.test_client()
    cid = new_conversation(client, alice)

    response = post(client, alice, cid, "Are you there?")
    streamed = client.post(
        messages_url(cid), json={"content": "Hello?"}, headers={**alice.headers, **SSE}
    )

    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "upstream_error"
    events = parse_sse(streamed.get_data(as_text=True))
    assert [e.event for e in events] == ["message", "error"]
    assert events[-1].data["error"]["code"] == "upstream_error"
    assert [(m.role, m.content, m.status) for m in message_rows(app, cid)] == [
        ("user", "Are you there?", "complete"),
        ("assistant", "", "failed"),
        ("user", "Hello?", "complete"),
        ("assistant", "", "failed"),
    ]


def test_redis_down_refuses_to_start_a_reply_and_stores_nothing(app, make_app, alice, unused_port):
    client = make_app("all", REDIS_URL=f"redis://127.0.0.1:{unused_port}/0").test_client()
    cid = new_conversation(client, alice)

    response = post(client, alice, cid)

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert message_rows(app, cid) == []


# --- one reply at a time, and a bounded number per process -------------------------------------


def test_a_second_message_while_a_reply_is_generated_is_409(app, chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=100, token_delay=0.02)
    client = chat().test_client()
    cid = new_conversation(client, alice)
    started = post(client, alice, cid, query_string={"wait": "0"}).get_json()

    again = post(client, alice, cid, "Me again")

    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "conflict"
    reply_id = started["reply"]["id"]
    assert client.post(reply_url(reply_id, "/stop"), headers=alice.headers).status_code == 202
    assert wait_until_finished(app, reply_id).status == "stopped"
    fake_openai.configure("chat-model", tokens=3)
    assert post(client, alice, cid, "Me again").status_code == 201


def test_beyond_the_concurrent_replies_of_a_process_new_ones_get_503(app, chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=100, token_delay=0.02)
    client = chat(LLM_MAX_CONCURRENT_REPLIES="1").test_client()
    busy_cid = new_conversation(client, alice)
    other = new_conversation(client, alice)
    started = post(client, alice, busy_cid, query_string={"wait": "0"}).get_json()

    refused = post(client, alice, other)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert refused.get_json()["error"]["retry_after"] == 2
    assert message_rows(app, other) == []  # nothing stored for a refused reply
    client.post(reply_url(started["reply"]["id"], "/stop"), headers=alice.headers)
    wait_until_finished(app, started["reply"]["id"])
    fake_openai.configure("chat-model", tokens=3)
    assert post(client, alice, other).status_code == 201


def test_a_reply_abandoned_by_a_dead_process_is_settled_as_failed(app, chat, alice, fake_openai):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    dead_id = insert_streaming_reply(app, cid, question="lost?")

    events = parse_sse(client.get(reply_url(dead_id, "/events"), headers=alice.headers).text)
    assert [(e.event, e.data["error"]["code"]) for e in events] == [("error", "upstream_error")]
    assert reply_row(app, dead_id).status == "failed"

    # The conversation goes on.
    assert post(client, alice, cid).status_code == 201


def test_posting_settles_an_abandoned_reply_too(app, chat, alice, fake_openai):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    dead_id = insert_streaming_reply(app, cid)

    assert post(client, alice, cid).status_code == 201
    assert reply_row(app, dead_id).status == "failed"


# --- regenerate -------------------------------------------------------------------------------


def test_regenerate_replaces_the_last_reply_with_a_new_one(app, chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=5)
    client = chat().test_client()
    cid = new_conversation(client, alice)
    first = post(client, alice, cid, "Tell me a joke").get_json()

    response = client.post(
        f"/api/v1/chat/conversations/{cid}/regenerate", headers={**alice.headers, **SSE}
    )

    events = parse_sse(response.get_data(as_text=True))
    assert events[0].event == "message"
    assert events[0].data["id"] == first["message"]["id"]  # the same question, answered again
    done = events[-1]
    assert done.event == "done"
    assert done.data["id"] != first["reply"]["id"]
    # Regenerating asks the model again (the cache would give the same answer back).
    assert done.data["cached"] is False
    assert len(fake_openai.chat_requests()) == 2
    assert [(m.id, m.role) for m in message_rows(app, cid)] == [
        (first["message"]["id"], "user"),
        (done.data["id"], "assistant"),
    ]
    assert reply_row(app, first["reply"]["id"]) is None


def test_regenerate_replaces_a_failed_reply(app, chat, make_app, alice, fake_openai):
    failing = chat(LLM_MODEL="error500").test_client()
    cid = new_conversation(failing, alice)
    assert post(failing, alice, cid).status_code == 502

    working = chat().test_client()
    response = working.post(f"/api/v1/chat/conversations/{cid}/regenerate", headers=alice.headers)

    assert response.status_code == 201, response.get_json()
    assert [(m.role, m.status) for m in message_rows(app, cid)] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


def test_regenerate_with_nothing_to_answer_is_409(chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = client.post(f"/api/v1/chat/conversations/{cid}/regenerate", headers=alice.headers)

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"


def test_regenerate_refuses_a_body_with_fields(chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = client.post(
        f"/api/v1/chat/conversations/{cid}/regenerate", json={"x": 1}, headers=alice.headers
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "x"
