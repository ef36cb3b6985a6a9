"""The bot's cache-hit fast path: looked up once, replayed and stored without the graph."""

from __future__ import annotations

from tests.fakes.bot_io import InMemoryHistoryStore, RecordingSink, story_store
from tests.unit.test_bot_graph import DictCache, counting
from webapp.bot import STOPPED, Bot, Context

CONVERSATION_ID = 7


def _bot(cache: DictCache, tokens: list[str]) -> Bot:
    return Bot(counting(tokens), model_name="m", cache=cache)


def _fresh_store() -> InMemoryHistoryStore:
    return story_store(CONVERSATION_ID)


def test_a_miss_looks_up_once_and_the_next_run_is_replayed_without_a_model_call() -> None:
    cache = DictCache()
    bot = _bot(cache, ["a ", "b"])
    # The graph keeps its full shape for every other caller.
    assert "lookup_cache" in bot.graph.nodes

    first_store = _fresh_store()
    first = bot.run(first_store, CONVERSATION_ID)
    assert len(cache.lookups) == 1  # the graph did not look up again
    assert first.reply.cached is False
    assert first_store.calls == ["load_history", "save_reply"]

    store, sink = _fresh_store(), RecordingSink()
    second = bot.run(store, CONVERSATION_ID, sink)

    assert len(cache.lookups) == 2
    assert second.reply.cached is True
    assert (second.reply.content, second.reply.model) == ("a b", "m")
    assert (second.reply.tokens_in, second.reply.tokens_out) == (
        first.reply.tokens_in,
        first.reply.tokens_out,
    )
    assert second.calls == ()
    assert sink.tokens == ["a ", "b"]
    assert sink.results == [second]
    assert store.calls == ["load_history", "save_reply"]
    assert second.message is not None


def test_the_fast_path_and_the_graph_share_one_cache_key() -> None:
    cache = DictCache()
    bot = _bot(cache, ["x"])
    # A reply the full graph cached (as a fresh run does) is a hit for the fast path.
    bot.graph.invoke({}, context=Context(store=_fresh_store(), conversation_id=CONVERSATION_ID))

    result = bot.run(_fresh_store(), CONVERSATION_ID)

    assert result.reply.cached is True
    assert cache.lookups[0] == cache.lookups[1]


def test_a_fresh_run_skips_the_lookup_and_a_replay_stops_on_request() -> None:
    cache = DictCache()
    bot = _bot(cache, ["1 ", "2 ", "3"])
    bot.run(_fresh_store(), CONVERSATION_ID)

    fresh = bot.run(_fresh_store(), CONVERSATION_ID, fresh=True)
    assert fresh.reply.cached is False
    assert len(cache.lookups) == 1

    sink = RecordingSink(stop_after=1)
    stopped = bot.run(_fresh_store(), CONVERSATION_ID, sink)
    assert (stopped.reply.status, stopped.reply.cached, stopped.reply.content) == (
        STOPPED,
        True,
        "1 ",
    )
