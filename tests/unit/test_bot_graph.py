"""The bot graph runs load_history -> generate -> persist, and Bot streams its tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    FakeListChatModelError,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from webapp.bot import Bot, Context, Done, Token, build_graph
from webapp.llm.offline import OfflineChatModel

CONVERSATION_ID = 7


class InMemoryHistoryStore:
    """A HistoryStore over a dict, recording every call in order."""

    def __init__(self, history: dict[int, list[BaseMessage]]) -> None:
        self.history = history
        self.calls: list[str] = []
        self.saved: list[dict[str, Any]] = []

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        self.calls.append("load_history")
        return list(self.history.get(conversation_id, []))

    def save_reply(
        self, conversation_id: int, content: str, *, model: str, tokens_in: int, tokens_out: int
    ) -> dict[str, Any]:
        self.calls.append("save_reply")
        message = {
            "id": len(self.saved) + 100,
            "conversation_id": conversation_id,
            "role": "assistant",
            "content": content,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
        }
        self.saved.append(message)
        self.history.setdefault(conversation_id, []).append(AIMessage(content))
        return message


@pytest.fixture
def store() -> InMemoryHistoryStore:
    return InMemoryHistoryStore(
        {
            CONVERSATION_ID: [
                HumanMessage("Hello"),
                AIMessage("Hi, how can I help?"),
                HumanMessage("Tell me a story"),
            ]
        }
    )


def fake_model(*replies: str | AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def test_graph_runs_load_history_then_generate_then_persist(store: InMemoryHistoryStore) -> None:
    graph = build_graph(fake_model("Once upon a time"), history_token_budget=1000)
    context = Context(store=store, conversation_id=CONVERSATION_ID)

    nodes = [
        node
        for update in graph.stream({}, context=context, stream_mode="updates")
        for node in update
    ]

    assert nodes == ["load_history", "generate", "persist"]
    assert store.calls == ["load_history", "save_reply"]


def test_graph_sends_the_trimmed_history_to_the_model(store: InMemoryHistoryStore) -> None:
    store.history[CONVERSATION_ID][:0] = [HumanMessage("old " * 500), AIMessage("old " * 500)]
    graph = build_graph(fake_model("The end"), history_token_budget=100)

    state = graph.invoke({}, context=Context(store=store, conversation_id=CONVERSATION_ID))

    assert state["messages"] == store.history[CONVERSATION_ID][2:5]


def test_persist_records_model_and_reported_usage(store: InMemoryHistoryStore) -> None:
    reply = AIMessage(
        "Once upon a time",
        response_metadata={"model_name": "gpt-backup"},
        usage_metadata={"input_tokens": 11, "output_tokens": 4, "total_tokens": 15},
    )
    # GenericFakeChatModel streams content only; unstreamed, it returns the metadata as given.
    model = GenericFakeChatModel(messages=iter([reply]), disable_streaming=True)
    bot = Bot(model, model_name="gpt-test")

    message = bot.reply(store, CONVERSATION_ID)

    assert message == store.saved[0]
    assert message["model"] == "gpt-backup"  # the model that answered, not the configured one
    assert (message["tokens_in"], message["tokens_out"]) == (11, 4)


def test_persist_estimates_usage_the_model_did_not_report(store: InMemoryHistoryStore) -> None:
    bot = Bot(fake_model("Once upon a time"), model_name="gpt-test")

    message = bot.reply(store, CONVERSATION_ID)

    assert message["model"] == "gpt-test"
    assert message["tokens_in"] > 0
    assert message["tokens_out"] > 0


def test_stream_yields_tokens_then_done_with_the_stored_reply(
    store: InMemoryHistoryStore,
) -> None:
    bot = Bot(fake_model("Once upon a time there was a bot"), model_name="fake")

    events = list(bot.stream(store, CONVERSATION_ID))

    *tokens, done = events
    assert len(tokens) > 1
    assert all(isinstance(event, Token) and event.text for event in tokens)
    assert isinstance(done, Done)
    assert done.message["content"] == "".join(token.text for token in tokens)
    assert done.message["content"] == "Once upon a time there was a bot"
    assert store.saved == [done.message]
    assert store.calls == ["load_history", "save_reply"]


def test_stream_with_the_offline_model(store: InMemoryHistoryStore) -> None:
    bot = Bot(OfflineChatModel(), model_name="offline")

    *tokens, done = bot.stream(store, CONVERSATION_ID)

    assert len(tokens) > 1
    assert isinstance(done, Done)
    assert done.message["content"].startswith("[offline model]")
    assert done.message["content"] == "".join(token.text for token in tokens)  # type: ignore[union-attr]
    assert done.message["model"] == "offline"
    assert done.message["tokens_out"] == len(tokens)


def test_stream_with_a_model_that_cannot_stream(store: InMemoryHistoryStore) -> None:
    # FakeListChatModel streams per character; disable_streaming makes it answer in one piece.
    model = FakeListChatModel(responses=["all at once"], disable_streaming=True)
    bot = Bot(model, model_name="fake")

    events = list(bot.stream(store, CONVERSATION_ID))

    assert events == [Token("all at once"), Done(store.saved[0])]


class LockstepChatModel(BaseChatModel):
    """Produce each token only after the consumer received the previous one.

    If tokens were buffered until the model finished, the next token would never be released
    and the model fails after `timeout` seconds instead of hanging the test.
    """

    tokens: list[str]
    received: threading.Semaphore
    timeout: float = 5.0

    @property
    def _llm_type(self) -> str:
        return "lockstep"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage("".join(self.tokens))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for index, token in enumerate(self.tokens):
            if index and not self.received.acquire(timeout=self.timeout):
                msg = f"token {index - 1} never reached the consumer while the model ran"
                raise AssertionError(msg)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


def test_stream_delivers_each_token_while_the_model_is_still_running(
    store: InMemoryHistoryStore,
) -> None:
    received = threading.Semaphore(0)
    model = LockstepChatModel(tokens=["one ", "two ", "three ", "four"], received=received)
    bot = Bot(model, model_name="lockstep")

    texts = []
    for event in bot.stream(store, CONVERSATION_ID):
        if isinstance(event, Token):
            texts.append(event.text)
            received.release()

    assert texts == ["one ", "two ", "three ", "four"]
    assert store.saved[0]["content"] == "one two three four"


def test_model_failure_propagates_and_stores_nothing(store: InMemoryHistoryStore) -> None:
    model = FakeListChatModel(responses=["never sent"], error_on_chunk_number=0)
    bot = Bot(model, model_name="failing")

    with pytest.raises(FakeListChatModelError):
        list(bot.stream(store, CONVERSATION_ID))

    assert store.saved == []


def test_empty_history_is_an_error(store: InMemoryHistoryStore) -> None:
    bot = Bot(fake_model("unused"), model_name="fake")

    with pytest.raises(ValueError, match="Conversation 404 has no messages"):
        bot.reply(store, 404)

    assert store.saved == []


def test_graph_needs_a_positive_budget() -> None:
    with pytest.raises(ValueError, match="history_token_budget"):
        build_graph(fake_model("unused"), history_token_budget=0)


def test_from_settings_without_provider_answers_offline(store: InMemoryHistoryStore) -> None:
    settings = SimpleNamespace(
        llm_model="gpt-test",
        llm_fallback_model="",
        llm_max_tokens=64,
        llm_temperature=0.7,
        llm_timeout=5.0,
        openai_api_key="",
        openai_base_url="",
    )
    bot = Bot.from_settings(settings, history_token_budget=500)

    message = bot.reply(store, CONVERSATION_ID)

    assert bot.model_name == "offline"
    assert message["model"] == "offline"
    assert '"Tell me a story"' in message["content"]


def test_one_bot_serves_concurrent_conversations() -> None:
    store = InMemoryHistoryStore({n: [HumanMessage(f"message {n}")] for n in range(8)})
    bot = Bot(OfflineChatModel(), model_name="offline")
    results: dict[int, list[Token | Done]] = {}

    def answer(conversation_id: int) -> None:
        results[conversation_id] = list(bot.stream(store, conversation_id))

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    for n in range(8):
        done = results[n][-1]
        assert isinstance(done, Done)
        assert f'"message {n}"' in done.message["content"]
        assert done.message["conversation_id"] == n
