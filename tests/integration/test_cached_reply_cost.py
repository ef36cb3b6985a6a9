"""What a cached reply costs: no request to the model server, and a fixed, short list of
statements and Redis commands (the bot replays a hit without running its graph)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis.connection import Connection

from tests.integration.generation_support import SSE, messages_url, new_conversation, parse_sse
from tests.integration.test_request_cost import statements

pytestmark = pytest.mark.integration

QUESTION = "What is a fox?"


@contextmanager
def redis_commands() -> Iterator[list[bytes]]:
    """Collect the names of the Redis commands this process sends meanwhile (any client)."""
    sent: list[bytes] = []
    original = Connection.send_packed_command

    def record(self: Connection, command: object, check_health: bool = True) -> None:
        chunks = command if isinstance(command, list) else [command]
        sent.extend(bytes(chunk).split(b"\r\n")[2] for chunk in chunks if bytes(chunk)[:1] == b"*")
        original(self, command, check_health)

    Connection.send_packed_command = record
    try:
        yield sent
    finally:
        Connection.send_packed_command = original


def test_a_cache_hit_calls_no_model_and_costs_a_fixed_number_of_round_trips(
    chat, alice, fake_openai
):
    fake_openai.configure("chat-model", tokens=5)
    app = chat()
    client = app.test_client()
    client.post(
        messages_url(new_conversation(client, alice)),
        json={"content": QUESTION},
        headers=alice.headers,
    )
    requests_before = len(fake_openai.chat_requests())
    cid = new_conversation(client, alice)

    with statements(app) as sent, redis_commands() as commands:
        response = client.post(
            messages_url(cid), json={"content": QUESTION}, headers={**alice.headers, **SSE}
        )
        events = parse_sse(response.get_data(as_text=True))

    assert events[-1].event == "done"
    assert events[-1].data["cached"] is True
    assert len(fake_openai.chat_requests()) == requests_before
    # The user, the claim (one statement), then storing the reply (one statement: the
    # message, the conversation's time and title, the webhook outbox).
    assert len(sent) == 3, sent
    # One lease, one cache lookup, one catalogue version check (issue 14: a model added or
    # removed anywhere answers the next reply); the rest are the rate limit, the revocation
    # check and the stream writes (batched, some perhaps after the response ended).
    assert commands.count(b"GET") == 2, commands
    assert commands.count(b"SET") == 1, commands
    assert set(commands) <= {
        b"EVALSHA",
        b"MGET",
        b"SET",
        b"GET",
        b"XADD",
        b"EXPIRE",
        b"PEXPIRE",
        b"EXISTS",
        b"DEL",
        b"MULTI",
        b"EXEC",
    }, commands
