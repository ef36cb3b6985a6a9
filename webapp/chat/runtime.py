"""The chat process's long-lived objects, built on first use: the bot, the reply runner, the
model catalogue and the chat models built from it; and the per-reply choice of models.

They are far too costly to build per request, and they are built lazily rather than in
``create_app``: processes that never chat (the CLI, health checks of a just-started worker) do
not pay for them, and each gunicorn worker builds its own after the fork (the runner owns
threads and connection pools, which do not survive a fork).

The catalogue is one snapshot per process, checked against the version in Redis each time a
reply chooses its models (one GET): a change an admin commits anywhere answers the next reply
in every worker of every host, with no restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from redis import RedisError
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from webapp.bot import Bot, ModelSelection
from webapp.connections import CONNECT_TIMEOUT, pooled_redis
from webapp.errors import ForbiddenError, ServiceUnavailableError
from webapp.extensions import db, get_redis
from webapp.llm.cache import RedisReplyCache
from webapp.llm.catalogue import (
    Catalogue,
    CatalogueSource,
    ModelUnavailableError,
    load_catalogue,
    settings_model_name,
)
from webapp.llm.factory import ChatModelPool
from webapp.replies.runner import ReplyRunner
from webapp.replies.service import ConversationModel, ModelChooser
from webapp.replies.stream import READ_BLOCK_MS
from webapp.secretbox import SecretBox
from webapp.services.model_choice import conversation_model
from webapp.settings import Settings

__all__ = [
    "BOT_EXTENSION",
    "CATALOGUE_EXTENSION",
    "MAX_OPEN_STREAMS",
    "MODEL_POOL_EXTENSION",
    "RUNNER_EXTENSION",
    "NoModelError",
    "conversation_models",
    "current_catalogue",
    "get_bot",
    "get_catalogue_source",
    "get_model_pool",
    "get_runner",
    "select_models",
]

BOT_EXTENSION = "bot"
RUNNER_EXTENSION = "chat_reply_runner"
CATALOGUE_EXTENSION = "model_catalogue"
CATALOGUE_LOADER_EXTENSION = "model_catalogue_loader"
MODEL_POOL_EXTENSION = "chat_model_pool"
MAX_OPEN_STREAMS = 4096
"""Event streams one process serves at once, at most (each holds a Redis connection while it
waits for tokens); more wait for a connection, then fail. gunicorn's worker_connections (the
chat service's greenlets) bound it first."""
# Connections the generations' pool holds beyond one per concurrent reply: the routes' stop,
# lease and idle checks, and the lease refresher.
_SPARE_CONNECTIONS = 16
# Reentrant: building one object may build another (the catalogue source, its loader).
_build_lock = threading.RLock()
logger = logging.getLogger(__name__)

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


def _catalogue_loader(app: Flask) -> Callable[[str], Catalogue]:
    """Return what loads the catalogue from the database (a session of its own per load)."""

    def build() -> Callable[[str], Catalogue]:
        settings: Settings = app.extensions["settings"]
        box = SecretBox(settings.provider_key_secrets)
        with app.app_context():
            url = db.engine.url
        # Connections of its own, not the requests' pool: requests waiting for the reload (each
        # holding a pooled connection since its user was loaded) would leave it none to load
        # with. A reload is rare (after a catalogue change): a fresh connection each time.
        engine = create_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
        )
        sessions = sessionmaker(bind=engine, expire_on_commit=False)

        def load(version: str) -> Catalogue:
            with sessions() as session:
                return load_catalogue(session, settings, box, version)

        return load

    return _once(app, CATALOGUE_LOADER_EXTENSION, build)


def get_catalogue_source(app: Flask) -> CatalogueSource:
    """Return the app's model catalogue source, building it on the first call.

    Args:
        app: Any application that chooses models (chat, "all").

    Returns:
        The process-wide source: a snapshot of the catalogue, reloaded (in a database session
        of its own) when the version in Redis changed.
    """
    return _once(
        app,
        CATALOGUE_EXTENSION,
        lambda: CatalogueSource(get_redis(app), _catalogue_loader(app)),
    )


def current_catalogue(app: Flask, *, without_redis: bool = False) -> Catalogue:
    """Return the catalogue as it is now (one Redis GET; a reload after a change).

    Args:
        app: The application.
        without_redis: With Redis unreachable, read the catalogue from the database instead
            of failing (listing and checking models: users keep managing their conversations
            while Redis is down; replies need Redis anyway).

    Raises:
        ServiceUnavailableError: If Redis cannot be reached (503: retry shortly), unless
            ``without_redis``.
    """
    try:
        return get_catalogue_source(app).current()
    except RedisError as exc:
        if without_redis:
            logger.warning("Redis is unavailable: reading the model catalogue from the database")
            return _catalogue_loader(app)("")
        logger.warning("Redis is unavailable: the model catalogue cannot be checked")
        raise ServiceUnavailableError(
            "The model catalogue cannot be read right now; retry shortly."
        ) from exc


def get_model_pool(app: Flask) -> ChatModelPool:
    """Return the app's pool of chat models built from the catalogue, building it once."""

    def build() -> ChatModelPool:
        settings: Settings = app.extensions["settings"]
        return ChatModelPool(
            default_max_tokens=settings.llm_max_tokens,
            default_temperature=settings.llm_temperature,
        )

    return _once(app, MODEL_POOL_EXTENSION, build)


def select_models(
    app: Flask,
    name: str | None,
    role: str,
    *,
    system_prompt: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    strict: bool = False,
) -> ModelSelection:
    """Choose the models one reply is answered by, from the catalogue as it is now.

    Args:
        app: The chat (or "all") application.
        name: The model asked for (a catalogue name); None: the system default.
        role: The user's role (``user``, ``admin``): only models it may use are chosen.
        system_prompt: Sent first with every call, or None.
        temperature: Overrides the models' default temperature, or None.
        max_tokens: Reply length limit asked for (capped by the model's own), or None.
        strict: Refuse a model the user may not use (the OpenAI-compatible API, where the
            client named it); otherwise such a name answers with the default (a conversation
            whose model was removed or disabled since it was chosen).

    Returns:
        The chosen model and its fallbacks, ready for ``bot.run(..., selection=...)``.

    Raises:
        ModelUnavailableError: With ``strict``, if the user may not use the model (also
            without, when the user may use no model at all).
        ServiceUnavailableError: If Redis cannot be reached.
    """
    return get_model_pool(app).select(
        current_catalogue(app),
        name,
        role,
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        strict=strict,
    )


class NoModelError(ForbiddenError):
    """Raised when a user may use no model at all (the admins allowed their role none)."""

    code = "no_model_available"


def conversation_models(app: Flask, *, role: str, default_model: str | None) -> ModelChooser:
    """Return what chooses a user's reply's models from the conversation's settings.

    The catalogue snapshot is taken now, before the reply's transaction (a reload reads the
    database outside it); the choice is made when the statement that starts the reply has read
    the conversation: its model if the user may use it, else the user's default model, else
    the system default.

    The settings' own model (LLM_MODEL, with LLM_FALLBACK_MODEL), chosen with no system
    prompt or temperature of the conversation's, is the bot's own: such a reply runs without a
    selection, exactly as before the catalogue (same models, recorded names and cache keys).

    Args:
        app: The chat (or "all") application.
        role: The user's role.
        default_model: The user's default model (``users.default_model``).

    Returns:
        The chooser for ``start_reply`` and ``regenerate_reply``.

    Raises:
        ServiceUnavailableError: If Redis cannot be reached.
    """
    catalogue = current_catalogue(app)
    pool = get_model_pool(app)
    settings: Settings = app.extensions["settings"]
    own = settings_model_name(settings)

    def choose(conversation: ConversationModel) -> ModelSelection | None:
        name = conversation_model(catalogue, role, conversation.model_name, default_model)
        try:
            chosen = catalogue.resolve(name, role)
        except ModelUnavailableError:
            raise NoModelError(
                "No model is available to your account; ask an administrator."
            ) from None
        if (
            chosen.managed
            and chosen.name == own
            and not conversation.system_prompt
            and conversation.temperature is None
        ):
            return None
        return pool.select(
            catalogue,
            chosen.name,
            role,
            system_prompt=conversation.system_prompt,
            temperature=conversation.temperature,
        )

    return choose
