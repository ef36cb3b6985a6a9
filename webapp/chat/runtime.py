"""The chat process's long-lived objects: the bot and the reply runner, built on first use.

Both are far too costly to build per request, and both are built lazily rather than in
``create_app``: processes that never chat (the CLI, health checks of a just-started worker) do
not pay for them, and each gunicorn worker builds its own after the fork (the runner owns
threads and connection pools, which do not survive a fork).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from sqlalchemy.orm import sessionmaker

from webapp.bot import Bot
from webapp.connections import CONNECT_TIMEOUT, pooled_redis
from webapp.extensions import db, get_redis
from webapp.llm.cache import RedisReplyCache
from webapp.replies.runner import ReplyRunner
from webapp.replies.stream import READ_BLOCK_MS
from webapp.settings import Settings

__all__ = [
    "BOT_EXTENSION",
    "MAX_OPEN_STREAMS",
    "RUNNER_EXTENSION",
    "get_bot",
    "get_runner",
]

BOT_EXTENSION = "bot"
RUNNER_EXTENSION = "chat_reply_runner"
MAX_OPEN_STREAMS = 4096
"""Event streams one process serves at once, at most (each holds a Redis connection while it
waits for tokens); more wait for a connection, then fail. gunicorn's worker_connections (the
chat service's greenlets) bound it first."""
# Connections the generations' pool holds beyond one per concurrent reply: the routes' stop,
# lease and idle checks, and the lease refresher.
_SPARE_CONNECTIONS = 16
_build_lock = threading.Lock()

_T = TypeVar("_T")


def _once(app: Flask, name: str, build: Callable[[], _T]) -> _T:
    value = app.extensions.get(name)
    if value is None:
        # Double-checked: gthread workers may receive their first chat requests concurrently.
        with _build_lock:
            value = app.extensions.get(name)
            if value is None:
                value = build()
                app.extensions[name] = value
    return value


def get_bot(app: Flask) -> Bot:
    """Return the app's bot, building it on the first call.

    Args:
        app: The chat (or "all") application.

    Returns:
        The process-wide bot, with the reply cache when LLM_CACHE_TTL is positive.
    """

    def build() -> Bot:
        settings: Settings = app.extensions["settings"]
        cache = (
            RedisReplyCache(get_redis(app), settings.llm_cache_ttl)
            if settings.llm_cache_ttl > 0
            else None
        )
        return Bot.from_settings(settings, cache=cache)

    return _once(app, BOT_EXTENSION, build)


def get_runner(app: Flask) -> ReplyRunner:
    """Return the app's reply runner, building it on the first call.

    Args:
        app: The chat (or "all") application.

    Returns:
        The process-wide runner: at most LLM_MAX_CONCURRENT_REPLIES replies at once, with
        Redis pools of its own for writing and reading the reply streams.
    """

    def build() -> ReplyRunner:
        settings: Settings = app.extensions["settings"]
        with app.app_context():
            engine = db.engine
        return ReplyRunner(
            redis=pooled_redis(
                settings.redis_url,
                max_connections=settings.llm_max_concurrent_replies + _SPARE_CONNECTIONS,
                socket_timeout=CONNECT_TIMEOUT,
            ),
            stream_redis=pooled_redis(
                settings.redis_url,
                max_connections=MAX_OPEN_STREAMS,
                socket_timeout=READ_BLOCK_MS / 1000 + CONNECT_TIMEOUT,
            ),
            # Sessions of their own: generations run outside any request.
            sessions=sessionmaker(bind=engine, expire_on_commit=False),
            max_concurrent=settings.llm_max_concurrent_replies,
            stream_ttl=settings.reply_stream_ttl,
        )

    return _once(app, RUNNER_EXTENSION, build)
