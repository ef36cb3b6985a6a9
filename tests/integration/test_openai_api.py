"""The OpenAI-compatible API (``/v1``), driven by the official ``openai`` SDK over real HTTP.

The app runs behind werkzeug's threaded server on a free local port (the SDK needs a real HTTP
server), with its bot answering through the fake OpenAI server as ``chat-model``: the replies
are deterministic (``reply_tokens``). Every client is built with ``max_retries=0``, so an error
is the answer to the one request made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import openai
import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import make_server

from tests.bench.open_streams import deployed_chat_config
from tests.fakes.openai_server import reply_tokens
from tests.integration.generation_support import message_rows
from tests.integration.gunicorn_support import start_gunicorn
from tests.waiting import answers_health, stop, wait_for
from webapp.extensions import db
from webapp.models import Conversation, DailyUsage

pytestmark = pytest.mark.integration

MODEL = "chat-model"
TOKENS = 6
KEYS = "/api/v1/auth/api-keys"
QUESTION = [{"role": "user", "content": "Say something."}]


def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` over HTTP on a free local port; yield its ``/v1`` base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        thread.join(timeout=30)


@pytest.fixture
def served(chat, fake_openai):
    """Build a chat app on the fake server and serve it; yield ``(app, base URL)``."""
    fake_openai.configure(MODEL, tokens=TOKENS)
    app = chat()
    yield from ((app, url) for url in serve(app))


def new_key(client, tokens, name: str = "sdk") -> tuple[int, str]:
    response = client.post(KEYS, json={"name": name}, headers=tokens.headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["api_key"]["id"], body["key"]


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)


def expected_reply() -> str:
    return "".join(reply_tokens(MODEL, TOKENS))


def usage_today(app: Flask, user_id: int) -> tuple[int, int, int] | None:
    with app.app_context():
        row = db.session.scalars(select(DailyUsage).where(DailyUsage.user_id == user_id)).first()
        db.session.remove()
    return None if row is None else (row.tokens_in, row.tokens_out, row.replies)


def conversations(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Conversation))
        db.session.remove()
    return int(count or 0)


def test_models_are_those_the_owner_may_use(served, client, alice):
    _app, url = served
    _, key = new_key(client, alice)
    models = sdk(url, key).models.list()
    names = [model.id for model in models.data]
    assert MODEL in names
    assert "offline" in names
    assert all(model.object == "model" for model in models.data)
    assert sdk(url, key).models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        sdk(url, key).models.retrieve("no-such-model")


def test_a_completion_answers_counts_usage_and_stores_nothing(served, client, alice, fake_openai):
    app, url = served
    _, key = new_key(client, alice)
    completion = sdk(url, key).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            *QUESTION,
        ],
        max_tokens=50,
        temperature=0.2,
        user="end-user-7",
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == expected_reply()
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    # Counted as a reply is, and nothing stored.
    assert usage_today(app, alice.user["id"]) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        1,
    )
    assert conversations(app) == 0
    # The model got the system prompt first, the conversation, and the request's settings.
    (sent,) = [r for r in fake_openai.requests if r.body.get("model") == MODEL]
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert sent.body["messages"][0]["content"] == "Be brief."
    assert sent.body["temperature"] == 0.2
    assert sent.body.get("max_completion_tokens", sent.body.get("max_tokens")) == 50


def test_a_streamed_completion_comes_in_chunks_with_usage_last(served, client, alice):
    _app, url = served
    _, key = new_key(client, alice)
    stream = sdk(url, key).chat.completions.create(
        model=MODEL, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2, "the content came in one piece"
    assert "".join(pieces) == expected_reply()
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_without_usage_asked_has_no_usage_chunk(served, client, alice):
    _app, url = served
    _, key = new_key(client, alice)
    chunks = list(
        sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_a_bad_key_is_an_authentication_error(served, client, alice):
    _app, url = served
    for key in ("cbk_" + "x" * 40, "sk-not-ours", alice.access):
        with pytest.raises(openai.AuthenticationError) as raised:
            sdk(url, key).models.list()
        assert raised.value.code == "invalid_api_key"


def test_an_unknown_model_is_not_found(served, client, alice):
    _app, url = served
    _, key = new_key(client, alice)
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(url, key).chat.completions.create(model="gpt-nonexistent", messages=QUESTION)
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"


def test_the_daily_quota_is_a_rate_limit_error(chat, fake_openai, client, alice):
    fake_openai.configure(MODEL, tokens=TOKENS)
    app = chat(LLM_DAILY_TOKEN_QUOTA="1")
    for url in serve(app):
        _, key = new_key(client, alice)
        sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION)
        with pytest.raises(openai.RateLimitError) as raised:
            sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION)
        assert raised.value.code == "insufficient_quota"
        assert int(raised.value.response.headers["Retry-After"]) > 0


def test_the_rate_limit_counts_the_owner(chat, fake_openai, client, alice):
    app = chat(RATE_LIMIT_REQUESTS="2")
    for url in serve(app):
        _, key = new_key(client, alice)
        sdk(url, key).models.list()
        sdk(url, key).models.list()
        with pytest.raises(openai.RateLimitError) as raised:
            sdk(url, key).models.list()
        assert raised.value.code == "rate_limit_exceeded"
        assert int(raised.value.response.headers["Retry-After"]) > 0


def test_a_revoked_key_fails_at_once(served, client, alice):
    _app, url = served
    key_id, key = new_key(client, alice)
    assert sdk(url, key).models.list().data
    assert client.delete(f"{KEYS}/{key_id}", headers=alice.headers).status_code == 204
    with pytest.raises(openai.AuthenticationError):
        sdk(url, key).models.list()


def test_a_disabled_users_key_fails_at_once(served, client, auth, alice):
    _app, url = served
    admin = auth.admin()
    _, key = new_key(client, alice)
    assert sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION).choices
    disabled = client.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)
    assert disabled.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"temperature": 5}, "temperature"),
        ({"n": 2}, "n"),
        ({"extra_body": {"tools": []}}, "tools"),
        ({"max_tokens": 10, "max_completion_tokens": 10}, "max_completion_tokens"),
    ],
)
def test_bad_requests_name_the_parameter(served, client, alice, changes, param):
    _app, url = served
    _, key = new_key(client, alice)
    request = {"model": MODEL, "messages": QUESTION, **changes}
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(url, key).chat.completions.create(**request)
    assert raised.value.param == param
    assert raised.value.type == "invalid_request_error"


def test_the_exchange_is_stored_when_asked(served, client, alice, fake_openai):
    app, url = served
    _, key = new_key(client, alice)
    completion = sdk(url, key).chat.completions.create(
        model=MODEL,
        temperature=0.3,
        stop=["zebra"],
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            *QUESTION,
        ],
        extra_headers={"X-Chatbot-Store": "conversation"},
    )
    assert completion.choices[0].message.content == expected_reply()
    listed = client.get("/api/v1/chat/conversations", headers=alice.headers).get_json()
    (conversation,) = listed["conversations"]
    rows = message_rows(app, conversation["id"])
    assert [(m.role, m.content) for m in rows] == [
        ("user", "Hello"),
        ("assistant", "Hi."),
        ("user", QUESTION[0]["content"]),
        ("assistant", expected_reply()),
    ]
    assert rows[-1].status == "complete"
    assert rows[-1].model == MODEL
    # The conversation keeps the request's settings; the reply was asked with all of them.
    stored = client.get(
        f"/api/v1/chat/conversations/{conversation['id']}", headers=alice.headers
    ).get_json()["conversation"]
    assert (stored["model"], stored["system_prompt"], stored["temperature"]) == (
        MODEL,
        "Be brief.",
        0.3,
    )
    (sent,) = [r for r in fake_openai.requests if r.body.get("model") == MODEL]
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.body["stop"] == ["zebra"]


def test_a_stored_exchange_streams_too(served, client, alice):
    app, url = served
    _, key = new_key(client, alice)
    stream = sdk(url, key).chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Chatbot-Store": "conversation"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_reply()
    assert chunks[-1].usage is not None
    assert conversations(app) == 1


def test_the_fallback_answers_when_the_model_fails(chat, fake_openai, client, alice):
    fake_openai.configure(MODEL, tokens=TOKENS)
    app = chat(LLM_MODEL="error500", LLM_FALLBACK_MODEL=MODEL)
    for url in serve(app):
        _, key = new_key(client, alice)
        completion = sdk(url, key).chat.completions.create(model="error500", messages=QUESTION)
        assert completion.choices[0].message.content == expected_reply()
        assert completion.model == MODEL


def test_a_model_that_fails_before_answering_is_a_502(chat, fake_openai, client, alice):
    app = chat(LLM_MODEL="error500")
    for url in serve(app):
        _, key = new_key(client, alice)
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as raised:
                sdk(url, key).chat.completions.create(
                    model="error500", messages=QUESTION, stream=stream
                )
            assert raised.value.status_code == 502
            assert raised.value.code == "upstream_error"


def test_a_repeated_completion_comes_from_the_cache(served, client, alice, fake_openai):
    app, url = served
    _, key = new_key(client, alice)
    first = sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION)
    again = sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION)
    assert again.choices[0].message.content == first.choices[0].message.content
    assert len([r for r in fake_openai.requests if r.body.get("model") == MODEL]) == 1
    # Other settings are another answer: not served from the cache.
    sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION, stop=["zebra"])
    assert len([r for r in fake_openai.requests if r.body.get("model") == MODEL]) == 2
    # The cached reply cost no model anything: only the two generated ones are counted.
    assert usage_today(app, alice.user["id"])[2] == 2


def test_a_client_that_leaves_a_stream_stops_the_model_at_once(served, client, alice, fake_openai):
    app, url = served
    fake_openai.configure(MODEL, tokens=400, token_delay=0.02)
    _, key = new_key(client, alice)
    stream = sdk(url, key).chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    # The model server saw its connection close long before its 400 tokens...
    (request,) = [r for r in fake_openai.chat_requests() if r.body.get("model") == MODEL]
    assert request.wait_finished()
    assert request.client_disconnected
    assert request.tokens_sent < 400
    # ...and what it wrote is counted.
    wait_for(lambda: usage_today(app, alice.user["id"]), "the stopped reply's usage")


# --- the chat service as deployed ---------------------------------------------------------------


@pytest.mark.parametrize("worker_class", ["gthread", "gevent"])
def test_the_deployed_chat_service_answers_the_sdk(
    tmp_path,
    subprocess_env,
    migrated_database,
    unused_port,
    fake_openai,
    client,
    alice,
    worker_class,
):
    fake_openai.configure(MODEL, tokens=TOKENS)
    _, key = new_key(client, alice)
    env = {**subprocess_env, "OPENAI_BASE_URL": fake_openai.base_url, "LLM_MODEL": MODEL}
    overrides = {"worker_class": worker_class}
    if worker_class == "gevent":
        overrides["worker_connections"] = 100
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(tmp_path, deployed_chat_config(unused_port, **overrides), env, log)
    try:
        wait_for(
            lambda: answers_health(unused_port),
            "the chat service answering",
            abandon=lambda: None if proc.poll() is None else log.read_text()[-3000:],
            interval=0.1,
        )
        api = sdk(f"http://127.0.0.1:{unused_port}/v1", key)
        assert MODEL in [model.id for model in api.models.list().data]
        answer = api.chat.completions.create(model=MODEL, messages=QUESTION)
        assert answer.choices[0].message.content == expected_reply()
        chunks = list(
            api.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Streamed, please."}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == expected_reply()
        assert chunks[-1].usage is not None
    finally:
        # Only the master this test started, by its PID; it stops its own workers.
        stop(proc)
