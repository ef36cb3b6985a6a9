"""The reply cache: whole replies in Redis, keyed on everything that decides them.

A reply is cached once a model produced it completely, under a SHA-256 of the model settings
that shape the answer (primary and fallback model, ``max_tokens``, temperature) and the exact
messages sent (the history after trimming). A later request with the same key is answered from
the cache, token by token as the model streamed it, without calling the model.

What is not cached: replies of the built-in offline model (computed locally in microseconds, so
a cache would only cost Redis memory), replies the fallback model gave (the primary should
answer again as soon as it recovers), and stopped or failed replies.

The cache is shared by every user: a hit needs the same trimmed history, so it reveals nothing
a user did not send themselves. A Redis failure makes the cache miss (and not store); the reply
is then generated as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import BaseMessage
from redis import Redis, RedisError

__all__ = ["CACHE_KEY_PREFIX", "CachedReply", "RedisReplyCache", "ReplyCache", "cache_key"]

logger = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "llm:reply:"
# Bump when the key's recipe or the stored format changes: old entries are then simply missed.
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CachedReply:
    """A complete reply as a model streamed it.

    Attributes:
        model: The model that answered.
        tokens: The reply's pieces, in order; joined, they are the reply text.
        tokens_in: Prompt tokens the model read for it.
        tokens_out: Tokens the model wrote.
    """

    model: str
    tokens: tuple[str, ...]
    tokens_in: int
    tokens_out: int

    @property
    def text(self) -> str:
        """Return the whole reply text."""
        return "".join(self.tokens)


class ReplyCache(Protocol):
    """Where the bot looks replies up and stores them."""

    def get(self, key: str) -> CachedReply | None:
        """Return the reply cached under ``key``, or None."""
        ...

    def put(self, key: str, reply: CachedReply) -> None:
        """Cache a complete reply under ``key``."""
        ...


def cache_key(params: Mapping[str, Any], messages: Sequence[BaseMessage]) -> str:
    """Return the cache key of a reply: a hash of everything that decides it.

    Args:
        params: The model settings that shape the answer (model names, max_tokens,
            temperature), JSON-able.
        messages: The messages sent to the model, after trimming.

    Returns:
        A hex SHA-256 digest.
    """
    document = {
        "v": _FORMAT_VERSION,
        "params": dict(params),
        # Content may be a string or a list of parts; the type tells system, user and assistant
        # apart.
        "messages": [[message.type, message.content] for message in messages],
    }
    raw = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class RedisReplyCache:
    """A `ReplyCache` in Redis, each entry expiring after the TTL (LLM_CACHE_TTL)."""

    def __init__(self, redis: Redis, ttl: int) -> None:
        """Use a Redis client.

        Args:
            redis: A Redis client (thread-safe; shared with the rest of the process).
            ttl: Seconds an entry lives; must be positive (0 means no cache: do not build one).

        Raises:
            ValueError: If the TTL is not positive.
        """
        if ttl <= 0:
            msg = f"the cache TTL must be positive, got {ttl}"
            raise ValueError(msg)
        self._redis = redis
        self._ttl = ttl

    def get(self, key: str) -> CachedReply | None:
        """Return the reply cached under ``key``; None on a miss or when Redis fails."""
        try:
            raw = self._redis.get(CACHE_KEY_PREFIX + key)
        except RedisError:
            logger.warning("reply cache lookup failed; answering without the cache", exc_info=True)
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return CachedReply(
                model=str(data["model"]),
                tokens=tuple(str(token) for token in data["tokens"]),
                tokens_in=int(data["tokens_in"]),
                tokens_out=int(data["tokens_out"]),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable reply cache entry %s", key)
            return None

    def put(self, key: str, reply: CachedReply) -> None:
        """Cache a complete reply for the TTL; a Redis failure is logged and ignored."""
        value = json.dumps(
            {
                "model": reply.model,
                "tokens": list(reply.tokens),
                "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        try:
            self._redis.set(CACHE_KEY_PREFIX + key, value, ex=self._ttl)
        except RedisError:
            logger.warning("storing a reply in the cache failed", exc_info=True)
