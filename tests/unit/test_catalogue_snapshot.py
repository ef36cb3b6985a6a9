"""The catalogue snapshot: managed entries from the settings, resolution, fallback chains."""

from types import SimpleNamespace

import pytest

from webapp.catalogue import (
    ENVIRONMENT_PROVIDER,
    Catalogue,
    ModelEntry,
    ModelUnavailableError,
    ProviderEntry,
    _managed,
    managed_names,
)


def _settings(**overrides):
    values = {
        "llm_model": "offline",
        "llm_fallback_model": "",
        "llm_max_tokens": 512,
        "llm_temperature": 0.7,
        "llm_timeout": 60.0,
        "openai_api_key": "",
        "openai_base_url": "",
    }
    return SimpleNamespace(**(values | overrides))


def test_without_a_provider_only_the_offline_model_is_managed():
    providers, models, default = _managed(_settings(llm_model="gpt-x"))
    assert [p.name for p in providers] == ["offline"]
    assert list(models) == ["offline"]
    assert default == "offline"


def test_the_settings_models_are_managed_with_their_fallback():
    providers, models, default = _managed(
        _settings(
            llm_model="gpt-x",
            llm_fallback_model="gpt-y",
            openai_base_url="http://127.0.0.1:9/v1",
            openai_api_key="sk-env",
        )
    )
    assert [p.name for p in providers] == ["offline", ENVIRONMENT_PROVIDER]
    assert default == "gpt-x"
    assert list(models) == ["gpt-x", "offline", "gpt-y"]
    assert models["gpt-x"].fallback == "gpt-y"
    assert models["gpt-x"].provider.api_key == "sk-env"
    assert "sk-env" not in repr(models["gpt-x"])
    assert managed_names(_settings())[0] >= {"offline", "environment"}


def _catalogue() -> Catalogue:
    provider = ProviderEntry(name="p", kind="openai", base_url="http://127.0.0.1:9/v1")
    models = [
        ModelEntry(name="a", provider=provider, upstream_id="a", display_name="A", fallback="b"),
        ModelEntry(
            name="b",
            provider=provider,
            upstream_id="b",
            display_name="B",
            enabled=False,
            fallback="c",
        ),
        ModelEntry(name="c", provider=provider, upstream_id="c", display_name="C", fallback="a"),
        ModelEntry(
            name="admins",
            provider=provider,
            upstream_id="x",
            display_name="X",
            allowed_roles=frozenset({"admin"}),
        ),
    ]
    return Catalogue([provider], models, "a")


def test_a_chain_skips_disabled_models_and_ends_at_a_repeat():
    assert [m.name for m in _catalogue().chain("a")] == ["a", "c"]


def test_resolve_is_strict_for_api_clients_and_lenient_for_conversations():
    catalogue = _catalogue()
    assert catalogue.resolve("admins", "admin").name == "admins"
    assert catalogue.resolve("admins", "user").name == "a"
    assert catalogue.resolve(None, "user").name == "a"
    assert catalogue.resolve("gone", "user").name == "a"
    for name in ("admins", "b", "gone"):
        with pytest.raises(ModelUnavailableError) as raised:
            catalogue.resolve(name, "user", strict=True)
        assert raised.value.name == name
    assert [m.name for m in catalogue.usable_by("user")] == ["a", "c"]


def test_the_default_must_exist():
    with pytest.raises(ValueError, match="default"):
        Catalogue([], [], "a")
