"""Streaming that survives: the Redis stream per reply, resuming with Last-Event-ID from any
app instance, stop reaching the model server, and replies that outlive their connection."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from tests.fakes.openai_server import reply_text, reply_tokens
from tests.integration.generation_support import (
    SSE,
    Event,
    insert_streaming_reply,
    iter_events,
    messages_url,
    new_conversation,
    parse_sse,
    read_until,
    reply_row,
    reply_url,
    tokens_in,
    wait_until_finished,
)
from webapp.extensions import db, get_redis
from webapp.replies import keys, stream

pytestmark = pytest.mark.integration


@pytest.fixture
def mallory(auth):
    return auth.signup("mallory@example.com")


def stream_post(client, tokens, conversation_id: int, content: str = "Tell me a story"):
    return client.post(
        messages_url(conversation_id),
        json={"content": content},
        headers={**tokens.headers, **SSE},
        buffered=False,
    )


def assert_exactly_once(events: list[Event], count: int) -> None:
    """Token ids are 1..count with nothing missing or repeated, then the last event."""
    assert [e.id for e in events] == list(range(events[0].id, events[0].id + len(events)))
    assert events[-1].id == count + 1


# --- the stream of a reply ----------------------------------------------------------------------


def test_post_streams_the_message_then_tokens_then_done_each_with_an_id(app, chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = client.post(
        messages_url(cid), json={"content": "Stream this"}, headers={**alice.headers, **SSE}
    )

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = parse_sse(response.get_data(as_text=True))
    assert [e.event for e in events] == ["message"] + ["token"] * 8 + ["done"]
    assert [e.id for e in events] == list(range(10))
    message, done = events[0].data, events[-1].data
    assert message["content"] == "Stream this"
    assert message["reply_id"] == done["id"] == int(response.headers["X-Reply-Id"])
    assert [e.data["text"] for e in tokens_in(events)] == reply_tokens("chat-model", 8)
    assert done["content"] == reply_text("chat-model", 8) == reply_row(app, done["id"]).content


def test_a_reconnect_with_last_event_id_gets_the_rest_exactly_once(
    app, chat, make_app, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=30, token_delay=0.02)
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = stream_post(client, alice, cid)
    first = read_until(iter_events(response), lambda seen: len(tokens_in(seen)) == 3)
    response.close()  # the connection drops mid-reply
    last_id = first[-1].id
    assert last_id == 3

    # Another app instance (another host or worker) serves the rest from the shared stream,
    # while the first one is still generating.
    other = make_app("all").test_client()
    resumed = other.get(
        reply_url(first[0].data["reply_id"], "/events"),
        headers={**alice.headers, "Last-Event-ID": str(last_id)},
    )
    rest = parse_sse(resumed.get_data(as_text=True))

    assert rest[0].id == last_id + 1
    assert_exactly_once(rest, 30)
    assert rest[-1].event == "done"
    texts = [e.data["text"] for e in tokens_in(first) + tokens_in(rest)]
    assert texts == reply_tokens("chat-model", 30)
    assert "".join(texts) == rest[-1].data["content"]


def test_a_page_reload_replays_the_whole_reply_with_the_query_parameter(chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    done = parse_sse(stream_post(client, alice, cid).get_data(as_text=True))[-1]

    replayed = parse_sse(
        client.get(
            reply_url(done.data["id"], "/events"),
            query_string={"last_event_id": "0"},
            headers=alice.headers,
        ).get_data(as_text=True)
    )

    assert_exactly_once(replayed, 8)
    assert replayed[-1] == done
    later = client.get(
        reply_url(done.data["id"], "/events"), headers={**alice.headers, "Last-Event-ID": "8"}
    )
    assert parse_sse(later.get_data(as_text=True)) == [done]


def test_once_the_stream_expired_the_last_event_comes_from_the_database(app, chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    done = parse_sse(stream_post(client, alice, cid).get_data(as_text=True))[-1]
    get_redis(app).delete(keys.stream_key(done.data["id"]))

    events = parse_sse(
        client.get(
            reply_url(done.data["id"], "/events"), headers={**alice.headers, "Last-Event-ID": "3"}
        ).get_data(as_text=True)
    )

    assert [(e.id, e.event) for e in events] == [(4, "done")]
    assert events[0].data == done.data


def test_the_reply_outlives_a_client_that_leaves(app, chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=20, token_delay=0.01)
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = stream_post(client, alice, cid)
    first = read_until(iter_events(response), lambda seen: bool(tokens_in(seen)))
    response.close()

    reply = wait_until_finished(app, first[0].data["reply_id"])
    assert reply.status == "complete"
    assert reply.content == reply_text("chat-model", 20)
    (request,) = fake_openai.chat_requests()
    assert request.wait_finished()
    assert not request.client_disconnected


@pytest.mark.parametrize("value", ["x", "-1", "1.5", str(10**12)])
def test_a_bad_last_event_id_is_400(chat, alice, value):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    reply_id = parse_sse(stream_post(client, alice, cid).get_data(as_text=True))[-1].data["id"]

    response = client.get(
        reply_url(reply_id, "/events"), headers={**alice.headers, "Last-Event-ID": value}
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "Last-Event-ID"


# --- stop ---------------------------------------------------------------------------------------


def test_stop_closes_the_model_stream_and_keeps_the_partial_reply(app, chat, alice, fake_openai):
    fake_openai.configure("chat-model", tokens=200, token_delay=0.02)
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = stream_post(client, alice, cid)
    events = iter_events(response)
    seen = read_until(events, lambda seen: len(tokens_in(seen)) == 3)
    reply_id = seen[0].data["reply_id"]
    stop = client.post(reply_url(reply_id, "/stop"), headers=alice.headers)
    seen += list(events)
    response.close()

    assert stop.status_code == 202
    assert stop.get_json()["reply"]["status"] == "streaming"
    # The model server saw the connection close, long before its 200 tokens.
    (request,) = fake_openai.chat_requests()
    assert request.wait_finished()
    assert request.client_disconnected
    assert request.tokens_sent < 200
    # What was streamed is what is stored, marked stopped.
    last = seen[-1]
    assert last.event == "stopped"
    streamed = "".join(e.data["text"] for e in tokens_in(seen))
    assert last.data["status"] == "stopped"
    assert last.data["content"] == streamed
    row = reply_row(app, reply_id)
    assert (row.status, row.content) == ("stopped", streamed)
    assert row.tokens_out > 0
    assert streamed.startswith(reply_text("chat-model", 3))


def test_stop_reaches_a_generation_running_in_another_app_instance(
    app, chat, make_app, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=200, token_delay=0.02)
    client = chat().test_client()
    cid = new_conversation(client, alice)
    started = client.post(
        messages_url(cid) + "?wait=0", json={"content": "go"}, headers=alice.headers
    ).get_json()
    reply_id = started["reply"]["id"]
    fake_openai.wait_for_request(lambda r: r.tokens_sent >= 2)

    other = make_app("all").test_client()
    assert other.post(reply_url(reply_id, "/stop"), headers=alice.headers).status_code == 202

    assert wait_until_finished(app, reply_id).status == "stopped"
    (request,) = fake_openai.chat_requests()
    assert request.wait_finished()
    assert request.client_disconnected


def test_stopping_a_finished_reply_changes_nothing(app, chat, alice):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    done = parse_sse(stream_post(client, alice, cid).get_data(as_text=True))[-1]

    response = client.post(reply_url(done.data["id"], "/stop"), headers=alice.headers)

    assert response.status_code == 200
    assert response.get_json()["reply"] == done.data
    assert not get_redis(app).exists(f"chat:reply:{done.data['id']}:stop")


# --- ownership ----------------------------------------------------------------------------------


def test_another_users_reply_is_404_on_every_reply_route(app, chat, alice, mallory):
    client = chat().test_client()
    cid = new_conversation(client, alice)
    done = parse_sse(stream_post(client, alice, cid, "secret").get_data(as_text=True))[-1]
    reply_id = done.data["id"]

    for method, suffix in (("GET", ""), ("GET", "/events"), ("POST", "/stop")):
        response = client.open(reply_url(reply_id, suffix), method=method, headers=mallory.headers)
        assert response.status_code == 404, (method, suffix)
        assert response.get_json()["error"]["code"] == "not_found"
        assert "secret" not in response.get_data(as_text=True)
    # A user message is no reply, even to its owner.
    user_message_id = reply_id - 1
    response = client.get(reply_url(user_message_id), headers=alice.headers)
    assert response.status_code == 404


# --- the reader itself ----------------------------------------------------------------------------


def test_the_reader_sends_keepalives_while_the_model_is_silent(app, chat, alice):
    chat_app = chat()
    client = chat_app.test_client()
    cid = new_conversation(client, alice)
    reply_id = insert_streaming_reply(app, cid)
    with app.app_context():
        sessions = sessionmaker(bind=db.engine)
    redis = get_redis(chat_app)
    redis.set(f"chat:reply:{reply_id}:lease", "1", ex=30)

    reader = stream.read_reply_events(
        redis, sessions, reply_id, block_ms=20, keepalive_seconds=0.05
    )
    assert next(reader) is None  # a keepalive, while nothing is written

    sink = stream.RedisReplySink(redis, reply_id, stream_ttl=5)
    sink.token("late ")
    assert next(reader) == stream.StreamEvent(1, "token", '{"text":"late "}')
    redis.delete(f"chat:reply:{reply_id}:lease")
    # The generation is gone without finishing: the reader settles the reply and ends.
    (last,) = list(reader)
    assert (last.id, last.event) == (2, "error")
    assert reply_row(app, reply_id).status == "failed"
