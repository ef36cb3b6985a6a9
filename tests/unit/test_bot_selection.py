"""A bot run with a per-reply model selection: its chain, its system prompt, its cache key."""

from __future__ import annotations

from langchain_core.messages import SystemMessage

from tests.fakes.bot_io import RecordingSink, story_store
from tests.unit.test_bot_graph import CountingModel, DictCache, counting
from webapp.bot import Bot, ModelSelection, NamedModel
from webapp.llm.offline import OfflineChatModel

CONVERSATION_ID = 7


def _selection(
    *models: tuple[str, CountingModel],
    system_prompt: str | None = None,
    cached: bool = True,
    temperature: float = 0.5,
) -> ModelSelection:
    names = [name for name, _ in models]
    return ModelSelection(
        models=tuple(NamedModel(name, model) for name, model in models),
        cache_params=(
            {
                "model": names[0],
                "fallbacks": names[1:],
                "temperature": temperature,
                "system_prompt": system_prompt or "",
            }
            if cached
            else None
        ),
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=64,
    )


def test_the_selection_answers_instead_of_the_bots_own_model() -> None:
    own = counting(["own"])
    chosen = counting(["chosen ", "reply"], name_in_reply="upstream-id-7")
    bot = Bot(own, model_name="own")

    result = bot.run(
        story_store(CONVERSATION_ID), CONVERSATION_ID, selection=_selection(("pick", chosen))
    )

    assert own.calls == []
    assert result.reply.content == "chosen reply"
    # The catalogue's name is recorded, not the upstream id the provider answered under.
    assert (result.reply.model, result.reply.fallback) == ("pick", False)
    assert [call.model for call in result.calls] == ["pick"]


def test_a_chain_longer_than_two_falls_back_in_order_until_one_answers() -> None:
    first = counting(["x"], fail_after=0)
    second = counting(["y"], fail_after=0)
    third = counting(["third ", "answers"])
    bot = Bot(counting(["own"]), model_name="own")
    selection = _selection(("a", first), ("b", second), ("c", third))

    result = bot.run(story_store(CONVERSATION_ID), CONVERSATION_ID, selection=selection)

    assert (result.reply.model, result.reply.fallback) == ("c", True)
    assert result.reply.content == "third answers"
    assert [(call.model, call.outcome) for call in result.calls] == [
        ("a", "error"),
        ("b", "error"),
        ("c", "success"),
    ]


def test_when_every_model_of_the_chain_fails_the_reply_is_failed() -> None:
    bot = Bot(counting(["own"]), model_name="own")
    selection = _selection(*((name, counting(["x"], fail_after=0)) for name in ("a", "b", "c")))

    result = bot.run(story_store(CONVERSATION_ID), CONVERSATION_ID, selection=selection)

    assert (result.reply.status, result.reply.model) == ("failed", "c")


def test_the_system_prompt_is_sent_first() -> None:
    seen: list[list[object]] = []

    class Recording(CountingModel):
        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            seen.append(list(messages))
            yield from super()._stream(messages, stop, run_manager, **kwargs)

    model = Recording(tokens=["ok"], calls=[], closed=[])
    bot = Bot(counting(["own"]), model_name="own")

    bot.run(
        story_store(CONVERSATION_ID),
        CONVERSATION_ID,
        selection=_selection(("m", model), system_prompt="Answer in French."),
    )

    assert seen[0][0] == SystemMessage("Answer in French.")
    assert seen[0][-1].content == "Tell me a story"


def test_the_cache_key_holds_the_selections_parameters() -> None:
    cache = DictCache()
    model = counting(["same"])
    bot = Bot(counting(["own"]), model_name="own", cache=cache)

    def run(**kwargs: object) -> bool:
        store = story_store(CONVERSATION_ID)
        result = bot.run(store, CONVERSATION_ID, selection=_selection(("m", model), **kwargs))
        return result.reply.cached

    assert run() is False
    assert run() is True
    assert run(temperature=0.9) is False
    assert run(system_prompt="Be brief.") is False
    assert run(system_prompt="Be brief.") is True
    assert len(model.calls) == 3
    assert len(cache.entries) == 3


def test_a_selection_without_cache_parameters_is_not_cached() -> None:
    cache = DictCache()
    bot = Bot(counting(["own"]), model_name="own", cache=cache)

    bot.run(
        story_store(CONVERSATION_ID),
        CONVERSATION_ID,
        selection=_selection(("m", counting(["a"])), cached=False),
    )

    assert (cache.lookups, cache.entries) == ([], {})


def test_an_offline_bot_keeps_its_cache_for_selections() -> None:
    cache = DictCache()
    settings = {
        "llm_model": "offline",
        "llm_fallback_model": "",
        "llm_max_tokens": 64,
        "llm_temperature": 0.7,
        "llm_timeout": 5.0,
        "openai_api_key": "",
        "openai_base_url": "",
    }
    bot = Bot.from_settings(type("S", (), settings)(), cache=cache)

    bot.run(story_store(CONVERSATION_ID), CONVERSATION_ID)
    assert cache.lookups == []  # the offline model's replies are not cached
    model = counting(["provider ", "reply"])
    for _ in range(2):
        result = bot.run(
            story_store(CONVERSATION_ID), CONVERSATION_ID, selection=_selection(("m", model))
        )
    assert result.reply.cached is True
    assert len(model.calls) == 1


def test_a_stop_between_models_of_the_chain_tries_no_more() -> None:
    class StopAfterFirstCall(RecordingSink):
        def stop_requested(self) -> bool:
            self.stop_checks += 1
            return self.stop_checks > 1

    second = counting(["never"])
    bot = Bot(OfflineChatModel(), model_name="offline")
    selection = _selection(("a", counting(["x"], fail_after=0)), ("b", second))

    result = bot.run(
        story_store(CONVERSATION_ID), CONVERSATION_ID, StopAfterFirstCall(), selection=selection
    )

    assert result.reply.status == "stopped"
    assert second.calls == []
