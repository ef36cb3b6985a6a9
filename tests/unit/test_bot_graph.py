"""The bot graph: load_history -> (cache) -> generate -> persist -> emit, tokens to the sink."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import field
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from tests.fakes.bot_io import InMemoryHistoryStore, RecordingSink, story_store
from tests.waiting import EVENT_TIMEOUT, join
from webapp.bot import Bot, Context, ReplyResult, build_graph, nodes
from webapp.llm.cache import CachedReply
from webapp.llm.offline import OfflineChatModel

CONVERSATION_ID = 7


class DictCache:
    """A ReplyCache in a dict."""

    def __init__(self) -> None:
        self.entries: dict[str, CachedReply] = {}
        self.lookups: list[str] = []

    def get(self, key: str) -> CachedReply | None:
        self.lookups.append(key)
        return self.entries.get(key)

    def put(self, key: str, reply: CachedReply) -> None:
        self.entries[key] = reply


class CountingModel(BaseChatModel):
    """Streams the given tokens; counts calls and whether each stream was closed."""

    tokens: list[str]
    fail_after: int | None = None
    calls: list[str] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)
    name_in_reply: str | None = None

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self, messages, stop=None, run_manager=None, **kwargs
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(str(messages[-1].content))
        self.closed.append(False)
        index = len(self.closed) - 1
        try:
            for position, token in enumerate(self.tokens):
                if position == self.fail_after:
                    raise ConnectionError("model went away")
                # Strings in response_metadata are concatenated across chunks: name the model
                # on the last one only, as providers do.
                last = position == len(self.tokens) - 1
                metadata = {"model_name": self.name_in_reply} if self.name_in_reply and last else {}
                yield ChatGenerationChunk(
                    message=AIMessageChunk(content=token, response_metadata=metadata)
                )
            if self.fail_after is not None and self.fail_after >= len(self.tokens):
                raise ConnectionError("model went away")
        finally:
            self.closed[index] = True


@pytest.fixture
def store() -> InMemoryHistoryStore:
    return story_store(CONVERSATION_ID)


def fake_model(*replies: str | AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def counting(tokens: list[str], **kwargs: Any) -> CountingModel:
    return CountingModel(tokens=tokens, calls=[], closed=[], **kwargs)


# --- the graph --------------------------------------------------------------------------------


def test_graph_runs_load_history_then_generate_then_persist_then_emit(
    store: InMemoryHistoryStore,
) -> None:
    graph = build_graph(fake_model("Once upon a time"), history_token_budget=1000)
    context = Context(store=store, conversation_id=CONVERSATION_ID)

    nodes = [
        node
        for update in graph.stream({}, context=context, stream_mode="updates")
        for node in update
    ]

    assert nodes == ["load_history", "generate", "persist", "emit"]
    assert store.calls == ["load_history", "save_reply"]


def test_graph_with_a_cache_looks_up_first_and_replays_a_hit(
    store: InMemoryHistoryStore,
) -> None:
    cache = DictCache()
    graph = build_graph(counting(["a ", "b"]), history_token_budget=1000, cache=cache)

    def nodes() -> list[str]:
        context = Context(store=store, conversation_id=CONVERSATION_ID)
        store.history[CONVERSATION_ID] = store.history[CONVERSATION_ID][:3]
        return [n for u in graph.stream({}, context=context, stream_mode="updates") for n in u]

    assert nodes() == ["load_history", "lookup_cache", "generate", "persist", "emit"]
    assert nodes() == ["load_history", "lookup_cache", "replay_cached", "persist", "emit"]


def test_graph_sends_the_trimmed_history_to_the_model(store: InMemoryHistoryStore) -> None:
    store.history[CONVERSATION_ID][:0] = [HumanMessage("old " * 500), AIMessage("old " * 500)]
    graph = build_graph(fake_model("The end"), history_token_budget=100)

    state = graph.invoke({}, context=Context(store=store, conversation_id=CONVERSATION_ID))

    assert state["messages"] == store.history[CONVERSATION_ID][2:5]


def test_graph_needs_a_positive_budget() -> None:
    with pytest.raises(ValueError, match="history_token_budget"):
        build_graph(fake_model("unused"), history_token_budget=0)


def test_empty_history_is_an_error(store: InMemoryHistoryStore) -> None:
    bot = Bot(fake_model("unused"), model_name="fake")

    with pytest.raises(ValueError, match="Conversation 404 has no messages"):
        bot.run(store, 404)

    assert store.saved == []


# --- tokens, usage, what is stored --------------------------------------------------------------


class TokenClock:
    """A monotonic clock for the bot's nodes that advances only when the sink gets a token."""

    def __init__(self, seconds_per_token: float) -> None:
        self.now = 1000.0
        self.seconds_per_token = seconds_per_token

    def monotonic(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.seconds_per_token


def test_tokens_go_to_the_sink_and_the_joined_reply_is_stored(
    store: InMemoryHistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = TokenClock(seconds_per_token=0.125)
    monkeypatch.setattr(nodes, "time", clock)  # the nodes' clock only
    bot = Bot(fake_model("Once upon a time there was a bot"), model_name="fake")

    class TickingSink(RecordingSink):
        def token(self, text: str) -> None:
            super().token(text)
            clock.tick()

    sink = TickingSink()

    result = bot.run(store, CONVERSATION_ID, sink)

    assert len(sink.tokens) > 1
    assert "".join(sink.tokens) == "Once upon a time there was a bot"
    assert result.reply.content == "Once upon a time there was a bot"
    assert result.reply.status == "complete"
    assert (result.reply.cached, result.reply.fallback) == (False, False)
    # The latency runs from the start of the run to the end of generation, in milliseconds:
    # exactly the time the clock advanced while the tokens were streamed.
    assert result.reply.latency_ms == 125 * len(sink.tokens)
    assert result.message["latency_ms"] == result.reply.latency_ms
    assert result.message == store.saved[0]
    assert sink.results == [result]
    (call,) = result.calls
    assert (call.model, call.outcome) == ("fake", "success")


def test_persist_records_model_and_reported_usage(store: InMemoryHistoryStore) -> None:
    reply = AIMessage(
        "Once upon a time",
        response_metadata={"model_name": "gpt-backup"},
        usage_metadata={"input_tokens": 11, "output_tokens": 4, "total_tokens": 15},
    )
    # GenericFakeChatModel streams content only; unstreamed, it returns the metadata as given.
    model = GenericFakeChatModel(messages=iter([reply]), disable_streaming=True)
    bot = Bot(model, model_name="gpt-test")

    message = bot.run(store, CONVERSATION_ID).message

    assert message == store.saved[0]
    assert message is not None
    assert message["model"] == "gpt-backup"  # the model that answered, not the configured one
    assert (message["tokens_in"], message["tokens_out"]) == (11, 4)


def test_persist_estimates_usage_the_model_did_not_report(store: InMemoryHistoryStore) -> None:
    bot = Bot(fake_model("Once upon a time"), model_name="gpt-test")

    message = bot.run(store, CONVERSATION_ID).message

    assert message is not None
    assert message["model"] == "gpt-test"
    assert message["tokens_in"] > 0
    assert message["tokens_out"] > 0


def test_offline_model(store: InMemoryHistoryStore) -> None:
    bot = Bot(OfflineChatModel(), model_name="offline")
    sink = RecordingSink()

    result = bot.run(store, CONVERSATION_ID, sink)

    assert len(sink.tokens) > 1
    assert result.reply.content.startswith("[offline model]")
    assert result.reply.content == "".join(sink.tokens)
    assert result.reply.model == "offline"
    assert result.reply.tokens_out == len(sink.tokens)


def test_a_model_that_cannot_stream_sends_one_token(store: InMemoryHistoryStore) -> None:
    # FakeListChatModel streams per character; disable_streaming makes it answer in one piece.
    model = FakeListChatModel(responses=["all at once"], disable_streaming=True)
    sink = RecordingSink()

    result = Bot(model, model_name="fake").run(store, CONVERSATION_ID, sink)

    assert sink.tokens == ["all at once"]
    assert result.reply.content == "all at once"


class LockstepChatModel(BaseChatModel):
    """Produce each token only after the sink received the previous one.

    If tokens were buffered until the model finished, the next token would never be released
    and the model fails after `timeout` seconds instead of hanging the test.
    """

    tokens: list[str]
    received: threading.Semaphore
    timeout: float = EVENT_TIMEOUT

    @property
    def _llm_type(self) -> str:
        return "lockstep"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        message = AIMessage("".join(self.tokens))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for index, token in enumerate(self.tokens):
            if index and not self.received.acquire(timeout=self.timeout):
                msg = f"token {index - 1} never reached the sink while the model ran"
                raise AssertionError(msg)
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))


def test_each_token_reaches_the_sink_while_the_model_is_still_running(
    store: InMemoryHistoryStore,
) -> None:
    received = threading.Semaphore(0)
    model = LockstepChatModel(tokens=["one ", "two ", "three ", "four"], received=received)

    class ReleasingSink(RecordingSink):
        def token(self, text: str) -> None:
            super().token(text)
            received.release()

    sink = ReleasingSink()
    result = Bot(model, model_name="lockstep").run(store, CONVERSATION_ID, sink)

    assert sink.tokens == ["one ", "two ", "three ", "four"]
    assert result.reply.status == "complete"
    assert store.saved[0]["content"] == "one two three four"


# --- failures and the fallback ------------------------------------------------------------------


def test_a_failing_model_is_stored_as_failed_not_raised(store: InMemoryHistoryStore) -> None:
    model = counting(["never ", "sent"], fail_after=0)
    sink = RecordingSink()

    result = Bot(model, model_name="failing").run(store, CONVERSATION_ID, sink)

    assert result.reply.status == "failed"
    assert result.reply.content == ""
    assert (result.reply.tokens_in, result.reply.tokens_out) == (0, 0)
    assert [(c.model, c.outcome) for c in result.calls] == [("failing", "error")]
    assert store.saved[0]["status"] == "failed"
    assert sink.results == [result]


def test_the_fallback_answers_when_the_primary_fails_before_its_first_token(
    store: InMemoryHistoryStore,
) -> None:
    primary = counting(["x"], fail_after=0)
    fallback = counting(["backup ", "reply"])
    bot = Bot(primary, model_name="primary", fallback=fallback, fallback_model_name="backup")
    sink = RecordingSink()

    result = bot.run(store, CONVERSATION_ID, sink)

    assert sink.tokens == ["backup ", "reply"]
    assert result.reply.status == "complete"
    assert result.reply.fallback is True
    assert result.reply.model == "backup"
    assert [(c.model, c.outcome) for c in result.calls] == [
        ("primary", "error"),
        ("backup", "success"),
    ]
    assert primary.closed == [True]


def test_a_failure_after_tokens_went_out_is_failed_not_a_fallback(
    store: InMemoryHistoryStore,
) -> None:
    primary = counting(["partial ", "reply ", "never"], fail_after=2)
    fallback = counting(["backup"])
    bot = Bot(primary, model_name="primary", fallback=fallback, fallback_model_name="backup")
    sink = RecordingSink()

    result = bot.run(store, CONVERSATION_ID, sink)

    assert sink.tokens == ["partial ", "reply "]
    assert result.reply.status == "failed"
    assert result.reply.content == "partial reply "
    assert result.reply.tokens_out > 0  # estimated: the model did that work
    assert fallback.calls == []


# --- stop -----------------------------------------------------------------------------------------


def test_stop_keeps_what_was_generated_and_closes_the_model_stream(
    store: InMemoryHistoryStore,
) -> None:
    model = counting(["one ", "two ", "three ", "four"])
    sink = RecordingSink(stop_after=2)

    result = Bot(model, model_name="m").run(store, CONVERSATION_ID, sink)

    assert sink.tokens == ["one ", "two "]
    assert result.reply.status == "stopped"
    assert result.reply.content == "one two "
    assert result.reply.tokens_out > 0
    assert model.closed == [True]
    assert [(c.model, c.outcome) for c in result.calls] == [("m", "cancelled")]


def test_stop_before_the_model_is_called_calls_no_model(store: InMemoryHistoryStore) -> None:
    model = counting(["never"])
    sink = RecordingSink(stop_after=0)

    result = Bot(model, model_name="m").run(store, CONVERSATION_ID, sink)

    assert model.calls == []
    assert result.reply.status == "stopped"
    assert result.reply.content == ""
    assert result.calls == ()


def test_stop_before_the_fallback_does_not_try_it(store: InMemoryHistoryStore) -> None:
    primary = counting(["x"], fail_after=0)
    fallback = counting(["backup"])
    bot = Bot(primary, model_name="primary", fallback=fallback, fallback_model_name="backup")

    class StopAfterFirstCall(RecordingSink):
        def stop_requested(self) -> bool:
            self.stop_checks += 1
            return self.stop_checks > 1

    result = bot.run(store, CONVERSATION_ID, StopAfterFirstCall())

    assert fallback.calls == []
    assert result.reply.status == "stopped"


# --- the cache ------------------------------------------------------------------------------------


def test_a_cache_hit_replays_the_tokens_without_calling_the_model(
    store: InMemoryHistoryStore,
) -> None:
    cache = DictCache()
    model = counting(["cached ", "story"], name_in_reply="gpt-x")
    bot = Bot(model, model_name="gpt", cache=cache, cache_params={"model": "gpt"})
    first = bot.run(store, CONVERSATION_ID, RecordingSink())
    store.history[CONVERSATION_ID].pop()  # forget the reply: ask the same question again

    sink = RecordingSink()
    second = bot.run(store, CONVERSATION_ID, sink)

    assert len(model.calls) == 1
    assert sink.tokens == ["cached ", "story"]
    assert second.reply.cached is True
    assert first.reply.cached is False
    assert second.reply.content == first.reply.content
    assert second.reply.model == "gpt-x"
    assert (second.reply.tokens_in, second.reply.tokens_out) == (
        first.reply.tokens_in,
        first.reply.tokens_out,
    )
    assert second.calls == ()


def test_the_cache_key_depends_on_the_model_settings_and_the_messages(
    store: InMemoryHistoryStore,
) -> None:
    cache = DictCache()
    model = counting(["a"])
    for params in ({"model": "gpt", "temperature": 0.1}, {"model": "gpt", "temperature": 0.2}):
        Bot(model, model_name="gpt", cache=cache, cache_params=params).run(store, CONVERSATION_ID)
        store.history[CONVERSATION_ID].pop()
    store.history[CONVERSATION_ID][-1] = HumanMessage("Tell me another story")
    bot = Bot(model, model_name="gpt", cache=cache, cache_params={"model": "gpt"})
    bot.run(store, CONVERSATION_ID)

    assert len(model.calls) == 3
    assert len(set(cache.lookups)) == 3


@pytest.mark.parametrize("case", ["stopped", "failed", "fallback"])
def test_only_complete_replies_of_the_primary_are_cached(
    store: InMemoryHistoryStore, case: str
) -> None:
    cache = DictCache()
    primary = counting(["one ", "two"], fail_after=0 if case == "fallback" else None)
    if case == "failed":
        primary = counting(["one ", "two"], fail_after=1)
    fallback = counting(["backup"])
    bot = Bot(primary, model_name="p", fallback=fallback, fallback_model_name="b", cache=cache)

    bot.run(store, CONVERSATION_ID, RecordingSink(stop_after=1 if case == "stopped" else None))

    assert cache.lookups
    assert cache.entries == {}


def test_a_stopped_cache_replay_keeps_what_was_sent(store: InMemoryHistoryStore) -> None:
    cache = DictCache()
    bot = Bot(counting(["a ", "b ", "c"]), model_name="m", cache=cache)
    bot.run(store, CONVERSATION_ID)
    store.history[CONVERSATION_ID].pop()

    result = bot.run(store, CONVERSATION_ID, RecordingSink(stop_after=1))

    assert (result.reply.status, result.reply.content, result.reply.cached) == (
        "stopped",
        "a ",
        True,
    )


# --- building the bot -------------------------------------------------------------------------


def _settings(**overrides: Any) -> SimpleNamespace:
    values = {
        "llm_model": "gpt-test",
        "llm_fallback_model": "",
        "llm_max_tokens": 64,
        "llm_temperature": 0.7,
        "llm_timeout": 5.0,
        "openai_api_key": "",
        "openai_base_url": "",
    }
    return SimpleNamespace(**{**values, **overrides})


def test_from_settings_without_provider_answers_offline_and_uncached(
    store: InMemoryHistoryStore,
) -> None:
    cache = DictCache()
    bot = Bot.from_settings(_settings(), cache=cache, history_token_budget=500)

    result = bot.run(store, CONVERSATION_ID)

    assert bot.model_name == "offline"
    assert result.reply.model == "offline"
    assert '"Tell me a story"' in result.reply.content
    assert cache.lookups == []  # the offline model is not worth caching


def test_from_settings_with_a_provider_uses_the_cache() -> None:
    cache = DictCache()
    settings = _settings(openai_base_url="http://127.0.0.1:9/v1", llm_fallback_model="backup")

    bot = Bot.from_settings(settings, cache=cache)

    assert bot.model_name == "gpt-test"
    assert bot.fallback_model_name == "backup"
    assert "lookup_cache" in bot.graph.nodes


def test_one_bot_serves_concurrent_conversations() -> None:
    store = InMemoryHistoryStore({n: [HumanMessage(f"message {n}")] for n in range(8)})
    bot = Bot(OfflineChatModel(), model_name="offline")
    results: dict[int, ReplyResult] = {}

    def answer(conversation_id: int) -> None:
        results[conversation_id] = bot.run(store, conversation_id)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        join(thread)

    for n in range(8):
        message = results[n].message
        assert message is not None
        assert f'"message {n}"' in message["content"]
        assert message["conversation_id"] == n


def test_a_fresh_run_skips_the_cached_reply_and_replaces_it(store: InMemoryHistoryStore) -> None:
    cache = DictCache()
    model = counting(["same"])
    bot = Bot(model, model_name="m", cache=cache)
    bot.run(store, CONVERSATION_ID)
    store.history[CONVERSATION_ID].pop()

    result = bot.run(store, CONVERSATION_ID, fresh=True)

    assert len(model.calls) == 2
    assert result.reply.cached is False
    assert len(cache.entries) == 1
