"""build_chat_model picks the offline model or ChatOpenAI (and a fallback) from the settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from webapp.llm.factory import (
    MAX_RETRIES,
    PLACEHOLDER_API_KEY,
    answered_by,
    build_chat_model,
)
from webapp.llm.offline import OfflineChatModel


def make_settings(**overrides: object) -> SimpleNamespace:
    """Return settings with the attributes build_chat_model reads (the contract's names)."""
    values: dict[str, object] = {
        "llm_model": "gpt-test",
        "llm_fallback_model": "",
        "llm_max_tokens": 64,
        "llm_temperature": 0.25,
        "llm_timeout": 7.5,
        "openai_api_key": "",
        "openai_base_url": "",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # ChatOpenAI falls back to these variables for anything not passed explicitly; a developer's
    # shell must not change what these tests see.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_offline_without_key_or_base_url() -> None:
    built = build_chat_model(make_settings(llm_fallback_model="gpt-backup"))

    assert isinstance(built.model, OfflineChatModel)
    assert built.model_name == "offline"
    assert built.fallback_model_name is None


def test_offline_when_llm_model_says_so_even_with_a_key() -> None:
    built = build_chat_model(make_settings(llm_model="offline", openai_api_key="sk-test"))

    assert isinstance(built.model, OfflineChatModel)
    assert built.model_name == "offline"


def test_chat_openai_gets_every_setting() -> None:
    settings = make_settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")

    built = build_chat_model(settings)

    model = built.model
    assert isinstance(model, ChatOpenAI)
    assert built.model_name == "gpt-test"
    assert model.model_name == "gpt-test"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-test"
    assert model.max_tokens == 64
    assert model.temperature == 0.25
    assert model.request_timeout == 7.5
    assert model.max_retries == MAX_RETRIES == 1
    assert model.streaming is True
    assert model.stream_usage is True


def test_placeholder_key_when_only_a_base_url_is_set() -> None:
    built = build_chat_model(make_settings(openai_base_url="http://127.0.0.1:9/v1"))

    assert isinstance(built.model, ChatOpenAI)
    assert built.model.openai_api_key is not None
    assert built.model.openai_api_key.get_secret_value() == PLACEHOLDER_API_KEY


def test_key_without_base_url_uses_the_default_endpoint() -> None:
    built = build_chat_model(make_settings(openai_api_key="sk-test"))

    assert isinstance(built.model, ChatOpenAI)
    assert built.model.openai_api_base is None


def test_fallback_model_is_built_beside_the_primary() -> None:
    settings = make_settings(openai_api_key="sk-test", llm_fallback_model=" gpt-backup ")

    built = build_chat_model(settings)

    assert built.model_name == "gpt-test"
    assert built.fallback_model_name == "gpt-backup"
    primary, fallback = built.model, built.fallback
    assert isinstance(primary, ChatOpenAI)
    assert isinstance(fallback, ChatOpenAI)
    assert (primary.model_name, fallback.model_name) == ("gpt-test", "gpt-backup")
    # Each model retries on its own and nothing retries around them: bounded worst case.
    assert fallback.max_retries == MAX_RETRIES
    assert fallback.request_timeout == 7.5


def test_offline_fallback_behind_a_real_model() -> None:
    built = build_chat_model(make_settings(openai_api_key="sk-test", llm_fallback_model="offline"))

    assert isinstance(built.model, ChatOpenAI)
    assert isinstance(built.fallback, OfflineChatModel)
    assert built.fallback_model_name == "offline"


def test_fallback_equal_to_primary_is_ignored() -> None:
    built = build_chat_model(make_settings(openai_api_key="sk-test", llm_fallback_model="gpt-test"))

    assert isinstance(built.model, ChatOpenAI)
    assert built.fallback is None
    assert built.fallback_model_name is None


def test_answered_by_prefers_the_model_named_in_the_reply() -> None:
    named = AIMessage("hi", response_metadata={"model_name": "gpt-backup"})

    assert answered_by(named, "gpt-test") == "gpt-backup"
    assert answered_by(AIMessage("hi"), "gpt-test") == "gpt-test"
