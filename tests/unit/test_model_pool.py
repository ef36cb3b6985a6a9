"""ChatModelPool: the per-reply selection from a catalogue snapshot, and the models it reuses."""

from __future__ import annotations

import pytest

from webapp.llm.catalogue import Catalogue, ModelEntry, ModelUnavailableError, ProviderEntry
from webapp.llm.factory import ChatModelPool
from webapp.llm.offline import OfflineChatModel
from webapp.llm.streaming import LeanChatOpenAI

OFFLINE = ProviderEntry(name="offline", kind="offline", managed=True)
REMOTE = ProviderEntry(
    name="remote",
    kind="openai",
    base_url="http://127.0.0.1:9/v1",
    api_key="sk-remote-1234",
    timeout=7.0,
    extra_headers={"X-Tenant": "t1"},
)


def _catalogue(version: str = "v1", **changes: object) -> Catalogue:
    models = [
        ModelEntry(name="offline", provider=OFFLINE, upstream_id="offline", display_name="O"),
        ModelEntry(
            **{  # type: ignore[arg-type]
                "name": "big",
                "provider": REMOTE,
                "upstream_id": "upstream-big",
                "display_name": "Big",
                "max_output_tokens": 100,
                "default_temperature": 0.3,
                "fallback": "mid",
                **changes,
            }
        ),
        ModelEntry(
            name="mid",
            provider=REMOTE,
            upstream_id="upstream-mid",
            display_name="Mid",
            fallback="small",
            allowed_roles=frozenset({"user", "admin"}),
        ),
        ModelEntry(
            name="small", provider=REMOTE, upstream_id="upstream-small", display_name="Small"
        ),
        ModelEntry(
            name="secret",
            provider=REMOTE,
            upstream_id="upstream-secret",
            display_name="Admins only",
            allowed_roles=frozenset({"admin"}),
        ),
    ]
    return Catalogue([OFFLINE, REMOTE], models, "offline", version)


@pytest.fixture
def pool() -> ChatModelPool:
    return ChatModelPool(default_max_tokens=512, default_temperature=0.7)


def test_a_selection_is_the_model_then_its_fallbacks_built_from_their_entries(pool):
    selection = pool.select(_catalogue(), "big", "user")

    assert selection.names == ("big", "mid", "small")
    big = selection.models[0].model
    assert isinstance(big, LeanChatOpenAI)
    assert big.model_name == "upstream-big"
    assert big.openai_api_base == "http://127.0.0.1:9/v1"
    assert big.openai_api_key is not None
    assert big.openai_api_key.get_secret_value() == "sk-remote-1234"
    assert big.request_timeout == 7.0
    assert big.default_headers == {"X-Tenant": "t1"}
    assert (big.max_tokens, big.temperature) == (100, 0.3)
    mid = selection.models[1].model
    assert isinstance(mid, LeanChatOpenAI)
    assert (mid.max_tokens, mid.temperature) == (512, 0.7)  # the settings' defaults
    assert (selection.max_tokens, selection.temperature) == (100, 0.3)


def test_the_conversations_temperature_and_system_prompt_go_into_the_cache_key(pool):
    plain = pool.select(_catalogue(), "big", "user")
    warm = pool.select(_catalogue(), "big", "user", temperature=1.5, system_prompt="Be brief.")

    assert plain.cache_params is not None
    assert warm.cache_params is not None
    assert plain.cache_params != warm.cache_params
    assert warm.cache_params["temperature"] == 1.5
    assert warm.cache_params["system_prompt"] == "Be brief."
    assert warm.cache_params["fallbacks"] == ["mid", "small"]
    assert warm.system_prompt == "Be brief."
    assert all(named.model.temperature == 1.5 for named in warm.models)  # type: ignore[attr-defined]


def test_a_max_tokens_asked_for_is_capped_by_the_models_own(pool):
    assert pool.select(_catalogue(), "big", "user", max_tokens=50).max_tokens == 50
    assert pool.select(_catalogue(), "big", "user", max_tokens=5000).max_tokens == 100


def test_models_are_reused_while_the_version_holds_and_rebuilt_after(pool):
    first = pool.select(_catalogue("v1"), "big", "user").models[0].model
    again = pool.select(_catalogue("v1"), "big", "user").models[0].model
    changed = pool.select(_catalogue("v2", upstream_id="upstream-big-2"), "big", "user")

    assert again is first
    assert changed.models[0].model is not first
    assert changed.models[0].model.model_name == "upstream-big-2"  # type: ignore[attr-defined]


def test_unknown_and_forbidden_names_fall_back_to_the_default_unless_strict(pool):
    for name in ("nope", "secret"):
        selection = pool.select(_catalogue(), name, "user")
        assert selection.names == ("offline",)
        assert isinstance(selection.models[0].model, OfflineChatModel)
        assert selection.cache_params is None  # the offline model is not cached
        with pytest.raises(ModelUnavailableError):
            pool.select(_catalogue(), name, "user", strict=True)
    assert pool.select(_catalogue(), "secret", "admin", strict=True).names == ("secret",)


def test_fallbacks_the_role_may_not_use_are_left_out(pool):
    catalogue = _catalogue(fallback="secret")
    assert pool.select(catalogue, "big", "user").names == ("big",)
    assert pool.select(catalogue, "big", "admin").names == ("big", "secret")
