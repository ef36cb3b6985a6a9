"""The lean streaming path (webapp.llm.streaming) against the local fake model server."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.fakes import openai_server
from tests.fakes.bot_io import InMemoryHistoryStore, RecordingSink, story_store
from tests.fakes.openai_server import FakeOpenAIServer, reply_text, reply_tokens
from tests.integration.test_openai_provider import LLMSettings
from tests.waiting import EVENT_TIMEOUT
from webapp.bot import Bot
from webapp.llm.factory import build_chat_model

pytestmark = pytest.mark.integration

CONVERSATION_ID = 1
# Every test gets an API key of its own, hence an HTTP client (and connections) of its own.
_keys = itertools.count(1)


@pytest.fixture
def accepted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record the client address of every TCP connection the fake server accepts."""
    addresses: list[tuple[str, int]] = []
    lock = threading.Lock()
    original = openai_server._Server.process_request

    def counting(self: Any, request: Any, client_address: Any) -> None:
        with lock:
            addresses.append(client_address)
        original(self, request, client_address)

    monkeypatch.setattr(openai_server._Server, "process_request", counting)
    return addresses


@pytest.fixture
def store() -> InMemoryHistoryStore:
    return story_store(CONVERSATION_ID)


def lean_bot(server: FakeOpenAIServer, model: str, **settings: Any) -> Bot:
    settings.setdefault("openai_api_key", f"sk-test-{next(_keys)}")
    return Bot.from_settings(
        LLMSettings(llm_model=model, openai_base_url=server.base_url, **settings)
    )


def test_replies_reuse_one_kept_alive_connection(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore, accepted: list[tuple[str, int]]
) -> None:
    fake_openai.configure("chat-model", tokens=20)
    bot = lean_bot(fake_openai, "chat-model")

    results = [bot.run(store, CONVERSATION_ID, RecordingSink()) for _ in range(3)]

    assert [r.reply.content for r in results] == [reply_text("chat-model", 20)] * 3
    assert [r.reply.tokens_out for r in results] == [20] * 3  # the server's usage chunk
    assert len(fake_openai.chat_requests("chat-model")) == 3
    # Three replies, one TCP connection: the same client port served them all.
    assert len(accepted) == 1


def test_the_lean_request_is_the_one_chat_openai_sends(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.configure("chat-model", tokens=3)
    settings = LLMSettings(
        llm_model="chat-model",
        openai_base_url=fake_openai.base_url,
        llm_max_tokens=40,
        llm_temperature=0.25,
        openai_api_key="sk-same",
    )
    model = build_chat_model(settings).model
    messages = [HumanMessage("Tell me a story")]
    plain = ChatOpenAI(
        model="chat-model",
        base_url=fake_openai.base_url,
        api_key="sk-same",
        max_completion_tokens=40,
        temperature=0.25,
        streaming=True,
        stream_usage=True,
    )

    stream = model.open_text_stream(messages)  # type: ignore[attr-defined]
    assert stream is not None
    texts = list(stream)
    list(plain.stream(messages))

    lean, reference = fake_openai.chat_requests("chat-model")
    assert texts == reply_tokens("chat-model", 3)
    assert lean.body == reference.body
    assert lean.headers["authorization"] == reference.headers["authorization"]
    assert lean.headers["content-type"] == "application/json"


def test_a_stop_closes_the_connection_and_the_next_reply_opens_one(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore, accepted: list[tuple[str, int]]
) -> None:
    fake_openai.configure("long-model", tokens=200, token_delay=0.01)
    bot = lean_bot(fake_openai, "long-model")

    stopped = bot.run(store, CONVERSATION_ID, RecordingSink(stop_after=3))

    assert stopped.reply.status == "stopped"
    assert stopped.reply.content == "".join(reply_tokens("long-model", 3))
    (request,) = fake_openai.chat_requests("long-model")
    assert request.wait_finished(EVENT_TIMEOUT)
    assert request.client_disconnected  # the model server saw the client go
    assert request.tokens_sent < 200

    fake_openai.configure("long-model", tokens=4)
    again = bot.run(store, CONVERSATION_ID, RecordingSink())

    assert again.reply.content == reply_text("long-model", 4)
    assert len(accepted) == 2  # the stopped stream's connection was not reused


def test_an_error_status_without_fallback_is_a_failed_reply(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    bot = lean_bot(fake_openai, "error500")

    result = bot.run(store, CONVERSATION_ID, RecordingSink())

    assert result.reply.status == "failed"
    assert result.reply.content == ""
    assert [call.outcome for call in result.calls] == ["error"]
