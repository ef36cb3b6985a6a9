"""The real OpenAI client (langchain-openai) through the Bot, against the local fake server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
import pytest
import requests

from tests.fakes.bot_io import InMemoryHistoryStore, RecordingSink, story_store
from tests.fakes.openai_server import FakeOpenAIServer, reply_text, reply_tokens
from tests.waiting import EVENT_TIMEOUT
from webapp.bot import Bot
from webapp.llm.factory import MAX_RETRIES, PLACEHOLDER_API_KEY

pytestmark = pytest.mark.integration

CONVERSATION_ID = 1


@dataclass(frozen=True)
class LLMSettings:
    """The model settings of webapp.settings.Settings, under the contract's names."""

    llm_model: str
    openai_base_url: str
    llm_fallback_model: str = ""
    llm_max_tokens: int = 64
    llm_temperature: float = 0.7
    # A slow (loaded) machine must not turn a reply into a timeout; the hang test sets its own.
    llm_timeout: float = EVENT_TIMEOUT
    openai_api_key: str = ""


def bot_on(server: FakeOpenAIServer, model: str, **settings: Any) -> Bot:
    """Return a Bot answering with ``model`` through the fake server, other settings as given."""
    return Bot.from_settings(
        LLMSettings(llm_model=model, openai_base_url=server.base_url, **settings)
    )


@pytest.fixture
def store() -> InMemoryHistoryStore:
    return story_store(CONVERSATION_ID)


def run(bot: Bot, store: InMemoryHistoryStore) -> tuple[list[str], dict[str, Any]]:
    """Generate one reply; return the token texts and the stored message."""
    sink = RecordingSink()
    result = bot.run(store, CONVERSATION_ID, sink)
    assert result.message is not None
    return sink.tokens, result.message


def test_streamed_reply_arrives_token_by_token(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    fake_openai.configure("chat-model", tokens=12, token_delay=0.002)
    bot = bot_on(fake_openai, "chat-model", llm_max_tokens=40, llm_temperature=0.25)

    texts, message = run(bot, store)

    assert texts == reply_tokens("chat-model", 12)
    assert message["content"] == reply_text("chat-model", 12)
    assert message["model"] == "chat-model"
    assert message["tokens_out"] == 12  # from the server's usage chunk, not an estimate
    assert message["tokens_in"] > 0
    (request,) = fake_openai.chat_requests()
    body = request.body
    assert body["model"] == "chat-model"
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 40
    assert body["temperature"] == 0.25
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert [m["content"] for m in body["messages"]] == [
        "Hello",
        "Hi, how can I help?",
        "Tell me a story",
    ]
    assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


def test_configured_api_key_is_sent(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    bot = bot_on(fake_openai, "chat-model", openai_api_key="sk-local")

    _, message = run(bot, store)

    assert message["content"] == reply_text("chat-model", 8)
    assert fake_openai.chat_requests()[0].headers["authorization"] == "Bearer sk-local"


@pytest.mark.parametrize("failure", ["error500", "error429"])
def test_failing_primary_falls_back(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore, failure: str
) -> None:
    bot = bot_on(fake_openai, failure, llm_fallback_model="backup-model")

    texts, message = run(bot, store)

    assert message["model"] == "backup-model"
    assert message["fallback"] is True
    assert message["content"] == reply_text("backup-model", 8) == "".join(texts)
    # The primary was tried once plus its bounded retries, then the fallback once.
    assert len(fake_openai.chat_requests(failure)) == 1 + MAX_RETRIES
    assert len(fake_openai.chat_requests("backup-model")) == 1
    assert store.saved == [message]


def test_hanging_primary_times_out_and_falls_back(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    # The hang outlasts any wait of the test: only the client's timeout can end it. (The backup
    # answers under the same timeout, so it is not as short as the test could make it.)
    fake_openai.configure("slow-primary", mode="hang", hang_seconds=EVENT_TIMEOUT)
    bot = bot_on(fake_openai, "slow-primary", llm_fallback_model="backup-model", llm_timeout=1.0)

    _, message = run(bot, store)

    assert message["model"] == "backup-model"
    hung = fake_openai.chat_requests("slow-primary")
    assert len(hung) == 1 + MAX_RETRIES
    for request in hung:
        assert request.wait_finished()
        assert request.client_disconnected  # the client gave up; the server noticed


def test_primary_dying_mid_reply_is_a_failed_reply_not_a_fallback(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    # Tokens already went out: appending the fallback's whole reply to them would garble the
    # answer, so the fallback only covers a primary that failed before its first token.
    fake_openai.configure("flaky-model", tokens=10, drop_after=3)
    bot = bot_on(fake_openai, "flaky-model", llm_fallback_model="backup-model")

    texts, message = run(bot, store)

    assert texts == reply_tokens("flaky-model", 3)
    assert message["status"] == "failed"
    assert message["content"] == "".join(texts)  # kept, and marked failed
    assert fake_openai.chat_requests("backup-model") == []


def test_offline_model_as_fallback(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    bot = bot_on(fake_openai, "error500", llm_fallback_model="offline")

    texts, message = run(bot, store)

    assert message["model"] == "offline"
    assert message["content"].startswith("[offline model]")
    assert len(texts) > 1


def test_max_tokens_cuts_the_reply(
    fake_openai: FakeOpenAIServer, store: InMemoryHistoryStore
) -> None:
    fake_openai.configure("chat-model", tokens=30)
    bot = bot_on(fake_openai, "chat-model", llm_max_tokens=5)

    _, message = run(bot, store)

    assert message["content"] == reply_text("chat-model", 5)
    assert message["tokens_out"] == 5


# The fake server itself: later issues (stop/cancel, benchmarks) rely on these behaviours.


def test_server_records_a_client_that_leaves_mid_stream(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.configure("long-model", tokens=200, token_delay=0.01)
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)

    stream = client.chat.completions.create(
        model="long-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for index, _chunk in enumerate(stream):
        if index == 3:
            break
    stream.close()
    client.close()

    (request,) = fake_openai.chat_requests("long-model")
    assert request.wait_finished()
    assert request.client_disconnected
    assert 0 < request.tokens_sent < 200


def test_server_lists_models_and_is_configurable_over_http(
    fake_openai: FakeOpenAIServer,
) -> None:
    url = fake_openai.url
    configured = requests.post(
        f"{url}/_admin/behaviors", json={"model": "tiny", "tokens": 2}, timeout=EVENT_TIMEOUT
    )
    models = requests.get(f"{url}/v1/models", timeout=EVENT_TIMEOUT).json()
    reply = requests.post(
        f"{url}/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi there"}]},
        timeout=EVENT_TIMEOUT,
    ).json()
    bad = requests.post(
        f"{url}/_admin/behaviors", json={"model": "x", "mode": "sideways"}, timeout=EVENT_TIMEOUT
    )
    recorded = requests.get(f"{url}/_admin/requests", timeout=EVENT_TIMEOUT).json()["requests"]

    assert configured.status_code == 200
    assert "tiny" in {model["id"] for model in models["data"]}
    assert reply["choices"][0]["message"]["content"] == reply_text("tiny", 2)
    assert reply["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert bad.status_code == 400
    assert [r["path"] for r in recorded] == ["/v1/models", "/v1/chat/completions"]
