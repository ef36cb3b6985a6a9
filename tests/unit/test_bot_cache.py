"""The reply cache: its key, its format in Redis, and that a Redis failure is only a miss."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from redis import RedisError

from webapp.llm.cache import CACHE_KEY_PREFIX, CachedReply, RedisReplyCache, cache_key

PARAMS = {"model": "gpt", "fallback_model": "", "max_tokens": 64, "temperature": 0.7}
MESSAGES = [SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage("?")]


class DictRedis:
    """The two Redis commands the cache uses, over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, int] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: str, ex: int) -> None:
        self.values[key] = value.encode()
        self.ttls[key] = ex


class DownRedis:
    def get(self, key: str) -> Any:
        raise RedisError("down")

    def set(self, key: str, value: str, ex: int) -> None:
        raise RedisError("down")


def test_the_key_is_stable_and_depends_on_everything_that_decides_the_answer() -> None:
    key = cache_key(PARAMS, MESSAGES)

    assert key == cache_key(dict(reversed(list(PARAMS.items()))), list(MESSAGES))
    assert len(key) == 64
    others = {
        cache_key({**PARAMS, "temperature": 0.1}, MESSAGES),
        cache_key({**PARAMS, "model": "gpt-2"}, MESSAGES),
        cache_key({**PARAMS, "fallback_model": "b"}, MESSAGES),
        cache_key({**PARAMS, "max_tokens": 65}, MESSAGES),
        cache_key(PARAMS, MESSAGES[1:]),
        cache_key(PARAMS, [*MESSAGES[:-1], HumanMessage("!")]),
        # The same text from another role is another conversation.
        cache_key(PARAMS, [*MESSAGES[:-1], AIMessage("?")]),
    }
    assert key not in others
    assert len(others) == 7


def test_a_reply_round_trips_with_its_ttl() -> None:
    redis = DictRedis()
    cache = RedisReplyCache(redis, ttl=60)  # type: ignore[arg-type]
    reply = CachedReply("gpt", ("Hé", "llo"), tokens_in=3, tokens_out=2)

    cache.put("k", reply)

    assert cache.get("k") == reply
    assert redis.ttls == {CACHE_KEY_PREFIX + "k": 60}
    assert cache.get("missing") is None


def test_an_unreadable_entry_is_a_miss() -> None:
    redis = DictRedis()
    redis.values[CACHE_KEY_PREFIX + "k"] = b'{"model": "gpt"}'

    assert RedisReplyCache(redis, ttl=60).get("k") is None  # type: ignore[arg-type]


def test_redis_down_is_a_miss_and_storing_is_skipped() -> None:
    cache = RedisReplyCache(DownRedis(), ttl=60)  # type: ignore[arg-type]

    assert cache.get("k") is None
    cache.put("k", CachedReply("gpt", ("a",), 1, 1))  # no exception


def test_a_cache_needs_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="TTL"):
        RedisReplyCache(DictRedis(), ttl=0)  # type: ignore[arg-type]
