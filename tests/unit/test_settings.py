"""Settings are read from the environment once, validated, and never leak secrets."""

from __future__ import annotations

import dataclasses

import pytest

from webapp.settings import Settings, SettingsError

SECRET = "k" * 32
MINIMAL = {
    "DATABASE_URL": "postgresql://app:db-password@db.internal:5432/chatbot",
    "REDIS_URL": "redis://:redis-password@cache.internal:6379/0",
    "SECRET_KEY": SECRET,
}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**MINIMAL, **overrides})


def error_for(**overrides: str) -> SettingsError:
    with pytest.raises(SettingsError) as excinfo:
        settings(**overrides)
    return excinfo.value


def test_minimal_environment_gives_the_documented_defaults():
    s = settings()
    assert s.database_url == "postgresql+psycopg://app:db-password@db.internal:5432/chatbot"
    assert s.redis_url == MINIMAL["REDIS_URL"]
    assert s.secret_key == SECRET
    assert (s.database_pool_size, s.access_token_expire_minutes, s.refresh_token_expire_days) == (
        5,
        15,
        7,
    )
    assert (s.llm_model, s.llm_fallback_model, s.llm_max_tokens) == ("offline", "", 512)
    assert (s.llm_temperature, s.llm_cache_ttl, s.llm_timeout) == (0.7, 3600, 60.0)
    assert (s.llm_daily_token_quota, s.llm_max_concurrent_replies) == (200_000, 64)
    assert s.reply_stream_ttl == 120
    assert (s.rate_limit_requests, s.rate_limit_window) == (100, 60)
    assert (s.login_rate_limit, s.register_rate_limit) == ("10 per minute", "10 per hour")
    assert s.trusted_proxy_count == 1
    assert (s.webhook_secret, s.webhook_timeout) == ("", 5.0)
    assert s.cors_origins == ()
    assert s.log_level == "INFO"
    assert (s.openai_api_key, s.openai_base_url) == ("", "")


def test_every_variable_is_read():
    s = settings(
        DATABASE_POOL_SIZE="12",
        ACCESS_TOKEN_EXPIRE_MINUTES="5",
        REFRESH_TOKEN_EXPIRE_DAYS="30",
        LLM_MODEL="gpt-4o-mini",
        LLM_FALLBACK_MODEL="offline",
        LLM_MAX_TOKENS="256",
        LLM_TEMPERATURE="0",
        LLM_CACHE_TTL="0",
        LLM_TIMEOUT="2.5",
        LLM_DAILY_TOKEN_QUOTA="0",
        LLM_MAX_CONCURRENT_REPLIES="3",
        REPLY_STREAM_TTL="30",
        RATE_LIMIT_REQUESTS="10",
        RATE_LIMIT_WINDOW="1",
        LOGIN_RATE_LIMIT="5/minute;50/day",
        REGISTER_RATE_LIMIT="3 per hour",
        TRUSTED_PROXY_COUNT="0",
        WEBHOOK_SECRET="hook",
        WEBHOOK_TIMEOUT="0.5",
        CORS_ORIGINS=" https://a.example , http://b.example:8080/ ,",
        LOG_LEVEL="debug",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL="http://127.0.0.1:8000/v1",
    )
    assert s.database_pool_size == 12
    assert s.access_token_expire_minutes == 5
    assert s.refresh_token_expire_days == 30
    assert (s.llm_model, s.llm_fallback_model) == ("gpt-4o-mini", "offline")
    assert (s.llm_max_tokens, s.llm_temperature, s.llm_cache_ttl, s.llm_timeout) == (
        256,
        0.0,
        0,
        2.5,
    )
    assert (s.llm_daily_token_quota, s.llm_max_concurrent_replies) == (0, 3)
    assert s.reply_stream_ttl == 30
    assert (s.rate_limit_requests, s.rate_limit_window) == (10, 1)
    assert (s.login_rate_limit, s.register_rate_limit) == ("5/minute;50/day", "3 per hour")
    assert s.trusted_proxy_count == 0
    assert (s.webhook_secret, s.webhook_timeout) == ("hook", 0.5)
    assert s.cors_origins == ("https://a.example", "http://b.example:8080")
    assert s.log_level == "DEBUG"
    assert (s.openai_api_key, s.openai_base_url) == ("sk-test", "http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
    ],
)
def test_database_url_is_rewritten_for_psycopg3(url, expected):
    assert settings(DATABASE_URL=url).database_url == expected


def test_missing_required_variables_are_all_named():
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_env({})
    assert set(excinfo.value.errors) == {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        assert f"{name} is required" in str(excinfo.value)


def test_blank_values_count_as_unset():
    assert settings(LLM_MODEL="  ", DATABASE_POOL_SIZE="").llm_model == "offline"
    assert set(error_for(SECRET_KEY="   ").errors) == {"SECRET_KEY"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://u:p@h/db"),
        ("DATABASE_URL", "postgresql+psycopg2://u:p@h/db"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://cache:6379"),
        ("SECRET_KEY", "k" * 31),
        ("DATABASE_POOL_SIZE", "five"),
        ("DATABASE_POOL_SIZE", "0"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "1.5"),
        ("REFRESH_TOKEN_EXPIRE_DAYS", "-1"),
        ("LLM_MAX_TOKENS", "0"),
        ("LLM_TEMPERATURE", "2.1"),
        ("LLM_TEMPERATURE", "-0.1"),
        ("LLM_TEMPERATURE", "nan"),
        ("LLM_TEMPERATURE", "warm"),
        ("LLM_CACHE_TTL", "-5"),
        ("LLM_TIMEOUT", "0"),
        ("LLM_TIMEOUT", "inf"),
        ("LLM_DAILY_TOKEN_QUOTA", "-1"),
        ("LLM_MAX_CONCURRENT_REPLIES", "0"),
        ("REPLY_STREAM_TTL", "0"),
        ("RATE_LIMIT_REQUESTS", "lots"),
        ("RATE_LIMIT_WINDOW", "0"),
        ("LOGIN_RATE_LIMIT", "ten a minute"),
        ("REGISTER_RATE_LIMIT", "10"),
        ("TRUSTED_PROXY_COUNT", "-1"),
        ("WEBHOOK_TIMEOUT", "-1"),
        ("CORS_ORIGINS", "https://ok.example,ftp://bad.example"),
        ("LOG_LEVEL", "TRACE"),
        ("OPENAI_BASE_URL", "localhost:8000"),
    ],
)
def test_invalid_value_is_reported_naming_the_variable(name, value):
    error = error_for(**{name: value})
    assert set(error.errors) == {name}
    assert str(error).startswith("invalid configuration: ")
    assert name in str(error)


def test_all_invalid_variables_are_reported_at_once():
    error = error_for(SECRET_KEY="short", LLM_TEMPERATURE="9", LOG_LEVEL="loud")
    assert set(error.errors) == {"SECRET_KEY", "LLM_TEMPERATURE", "LOG_LEVEL"}


def test_temperature_bounds_are_inclusive():
    assert settings(LLM_TEMPERATURE="0").llm_temperature == 0.0
    assert settings(LLM_TEMPERATURE="2").llm_temperature == 2.0


def test_secret_key_of_exactly_the_minimum_length_is_accepted():
    assert settings(SECRET_KEY="x" * 32).secret_key == "x" * 32


def test_repr_leaks_no_secret():
    text = repr(settings(OPENAI_API_KEY="sk-very-secret", WEBHOOK_SECRET="hook-secret"))
    for secret in (SECRET, "db-password", "redis-password", "sk-very-secret", "hook-secret"):
        assert secret not in text
    assert "llm_model='offline'" in text


def test_settings_are_immutable():
    s = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.secret_key = "changed"  # type: ignore[misc]
