"""The lean hot path of a streamed reply: start_reply's single statement, the history handed to
the generation, and the in-process hand-off of the tokens next to the Redis stream."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from sqlalchemy import event, text

from tests.fakes.openai_server import reply_tokens
from tests.integration.generation_support import (
    SSE,
    insert_streaming_reply,
    iter_events,
    messages_url,
    new_conversation,
    parse_sse,
    read_until,
    reply_url,
    tokens_in,
    wait_until_finished,
)
from tests.waiting import join, wait_for
from webapp.chat.runtime import get_bot, get_runner
from webapp.extensions import db, get_redis
from webapp.replies import keys, service, stream
from webapp.replies.channel import ReplyChannel

pytestmark = pytest.mark.integration


def _xread_calls(redis) -> int:
    return int(redis.info("commandstats").get("cmdstat_xread", {}).get("calls", 0))


def _stream_entries(redis, reply_id: int) -> list[tuple[int, str, str]]:
    entries = redis.xrange(keys.stream_key(reply_id))
    return [
        (int(entry_id.decode().partition("-")[2]), f[b"event"].decode(), f[b"data"].decode())
        for entry_id, f in entries
    ]


class StatementLog:
    """The statements the app's engine runs, with the name of the thread that ran each."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        with self._lock:
            self.statements.append((threading.current_thread().name, statement))

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def of_thread(self, prefix: str) -> list[str]:
        with self._lock:
            return [sql for thread, sql in self.statements if thread.startswith(prefix)]


def test_a_reader_in_the_generating_process_gets_every_token_from_memory_and_redis_too(
    app, chat, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=40, token_delay=0.002)
    chat_app = chat()
    client = chat_app.test_client()
    redis = get_redis(chat_app)
    cid = new_conversation(client, alice)
    xreads = _xread_calls(redis)

    response = client.post(
        messages_url(cid), json={"content": "Stream this"}, headers={**alice.headers, **SSE}
    )
    events = parse_sse(response.get_data(as_text=True))

    # Every token, in order, numbered 1..40 after the message (0), then done (41).
    assert [e.id for e in events] == list(range(42))
    assert [e.data["text"] for e in tokens_in(events)] == reply_tokens("chat-model", 40)
    assert events[-1].event == "done"
    # Read from the generation's channel: the POST's event stream never asked Redis.
    assert _xread_calls(redis) == xreads
    # The Redis stream holds the very same events under the same ids, for other readers.
    reply_id = events[-1].data["id"]
    stored = _stream_entries(redis, reply_id)
    assert [(e.id, e.event) for e in events[1:]] == [(i, name) for i, name, _ in stored]
    assert [e.data["text"] for e in tokens_in(events)] == [
        json.loads(data)["text"] for _, name, data in stored if name == "token"
    ]
    # The lease went with the last event.
    assert not redis.exists(keys.lease_key(reply_id))


def test_a_reconnect_to_the_generating_process_resumes_from_memory_exactly_once(
    app, chat, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=30, token_delay=0.02)
    client = chat().test_client()
    cid = new_conversation(client, alice)

    response = client.post(
        messages_url(cid),
        json={"content": "Tell me"},
        headers={**alice.headers, **SSE},
        buffered=False,
    )
    first = read_until(iter_events(response), lambda seen: len(tokens_in(seen)) == 4)
    response.close()
    reply_id = first[0].data["reply_id"]

    resumed = client.get(
        reply_url(reply_id, "/events"), headers={**alice.headers, "Last-Event-ID": "4"}
    )
    rest = parse_sse(resumed.get_data(as_text=True))

    assert [e.id for e in rest] == list(range(5, 32))
    assert rest[-1].event == "done"
    texts = [e.data["text"] for e in tokens_in(first) + tokens_in(rest)]
    assert texts == reply_tokens("chat-model", 30)


def test_start_reply_is_one_statement_and_the_generation_reads_no_history(
    app, chat, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=3)
    chat_app = chat(LLM_DAILY_TOKEN_QUOTA="100000")
    client = chat_app.test_client()
    cid = new_conversation(client, alice)
    first = client.post(messages_url(cid), json={"content": "Hello"}, headers=alice.headers)
    assert first.status_code == 201

    with chat_app.app_context():
        session = db.session()
        session.commit()  # the transaction the claim runs in starts with it
        with StatementLog(db.engine) as log:
            started = service.start_reply(
                session,
                get_runner(chat_app),
                get_bot(chat_app),
                user_id=alice.user["id"],
                conversation_id=cid,
                content="And now?",
                quota=100_000,
            )
            in_request = log.of_thread(threading.current_thread().name)
            result = started.future.result()
        db.session.remove()

    # Lock, quota, idle check, history and both inserts: one statement.
    assert len(in_request) == 1
    assert in_request[0].lstrip().startswith("WITH touched AS")
    # The generation got the history with the job: its first statement stores the reply.
    generation = log.of_thread("chat-reply")
    assert generation[0].lstrip().startswith("WITH stored AS")
    assert not any("FROM messages" in sql and "SELECT" in sql.split()[0] for sql in generation)
    # And it answered the whole conversation.
    assert result is not None
    assert result.reply.status == "complete"
    request = fake_openai.chat_requests()[-1]
    sent = [m["content"] for m in request.body["messages"]]
    assert sent == ["Hello", first.get_json()["reply"]["content"], "And now?"]
    assert wait_until_finished(chat_app, started.reply.id).status == "complete"


def test_the_sink_writes_a_batch_the_model_went_quiet_after_and_sees_a_stop_with_a_write(
    app, chat, alice
):
    chat_app = chat()
    client = chat_app.test_client()
    cid = new_conversation(client, alice)
    reply_id = insert_streaming_reply(app, cid)
    redis = get_redis(chat_app)
    flusher = stream.StreamFlusher()
    channel = ReplyChannel(reply_id)
    sink = stream.RedisReplySink(redis, reply_id, stream_ttl=5, channel=channel, flusher=flusher)
    try:
        sink.token("one ")  # the first token goes at once
        assert [e[0] for e in _stream_entries(redis, reply_id)] == [1]
        sink.token("two ")  # then it waits for its batch, while this process has it at once...
        assert [e.id for e in itertools.islice(channel.follow(), 2)] == [1, 2]
        # ...which the flusher writes, since no token comes after it.
        wait_for(lambda: len(_stream_entries(redis, reply_id)) == 2, "the batch written")

        # A stop asked on another host is seen with the next write.
        redis.set(keys.stop_key(reply_id), "1")
        sink.token("three ")
        wait_for(sink.stop_requested, "the stop seen")
        assert [e[0] for e in _stream_entries(redis, reply_id)] == [1, 2, 3]
    finally:
        flusher.close()


def _backends_blocked_by(app, pid: int) -> list[int]:
    query = text("SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with app.app_context(), db.engine.connect() as connection:
        return list(connection.execute(query, {"pid": pid}).scalars())


def test_a_reply_started_while_the_statement_waited_for_the_lock_is_seen_409(
    app, chat, alice, fake_openai
):
    # The claim statement reads with the snapshot it took before waiting for the row lock; a
    # reply another transaction started meanwhile must still be seen (the row-version guard).
    chat_app = chat()
    client = chat_app.test_client()
    cid = new_conversation(client, alice)
    outcome: list[int] = []

    def post_message() -> None:
        outcome.append(
            client.post(
                messages_url(cid), json={"content": "Me too"}, headers=alice.headers
            ).status_code
        )

    with chat_app.app_context():
        engine = db.engine
    with engine.connect() as first:
        # Another request, half-way through starting a reply: row locked, reply inserted.
        transaction = first.begin()
        first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
        first.execute(
            text("UPDATE conversations SET updated_at = now() WHERE id = :id"), {"id": cid}
        )
        other_reply = first.execute(
            text(
                "INSERT INTO messages (conversation_id, role, content, status)"
                " VALUES (:id, 'assistant', '', 'streaming') RETURNING id"
            ),
            {"id": cid},
        ).scalar_one()
        get_redis(chat_app).set(keys.lease_key(other_reply), "1", ex=60)
        second = threading.Thread(target=post_message)
        second.start()
        wait_for(
            lambda: _backends_blocked_by(chat_app, first_pid),
            "the POST waiting for the first transaction's lock",
            abandon=lambda: None if second.is_alive() else f"it finished first: {outcome}",
        )
        transaction.commit()
    join(second)

    assert outcome == [409]
