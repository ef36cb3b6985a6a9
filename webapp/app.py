"""The application factory: one Flask app per service (auth, chat, admin) or all of them."""

from __future__ import annotations

import os
from importlib import import_module

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import metrics, services_list
from webapp.commands import register_commands
from webapp.connections import CONNECT_TIMEOUT, pooled_redis
from webapp.error_handlers import register_error_handlers
from webapp.extensions import REDIS_EXTENSION, db, init_cors, migrate
from webapp.health import bp as health_bp
from webapp.logs import configure_logging, init_request_ids
from webapp.openapi import register_api_docs
from webapp.rate_limits import init_rate_limits
from webapp.request_body import BoundedJSONProvider, UnreadBodyDrain
from webapp.routing import ID_CONVERTERS
from webapp.security import init_jwt, jwt_config
from webapp.settings import Settings
from webapp.web import register_pages

__all__ = ["MAX_CONTENT_LENGTH", "SERVICES", "create_app"]

SERVICES = (*services_list.SERVICE_NAMES, services_list.ALL)
# Largest request body. The biggest legitimate one is a chat message: 8000 characters, which
# JSON may escape to 12 bytes each (a surrogate pair as two \uXXXX escapes).
MAX_CONTENT_LENGTH = 128 * 1024
# Redis connections per process for requests (auth checks, rate limits); the chat service's
# streams use pools of their own (webapp/chat/runtime.py).
REDIS_POOL_SIZE = 64
# Seconds after which a pooled PostgreSQL connection is replaced on its next checkout.
DATABASE_POOL_RECYCLE = 1800
# Connections a worker may open beyond DATABASE_POOL_SIZE in a burst, per pooled one.
DATABASE_POOL_OVERFLOW_FACTOR = 2


def create_app(service: str = "all", settings: Settings | None = None) -> Flask:
    """Create the Flask application of one service.

    Only the named service's blueprint is imported, so the auth and admin processes never load
    the bot (LangChain, LangGraph) and stay small.

    Args:
        service: "auth", "chat", "admin", or "all" for the three together.
        settings: The configuration; read from ``os.environ`` when omitted.

    Returns:
        The configured application. Nothing connects to a database or Redis until used.

    Raises:
        ValueError: If ``service`` is not one of ``SERVICES``.
        SettingsError: If ``settings`` is omitted and the environment is invalid.
    """
    if service not in SERVICES:
        msg = f"unknown service {service!r}; expected one of {', '.join(SERVICES)}"
        raise ValueError(msg)
    if settings is None:
        settings = Settings.from_env(os.environ)
    # Before the app exists: Flask then sees a handler and adds no plain-text one of its own.
    configure_logging(
        service,
        settings.log_level,
        secrets=(
            settings.secret_key,
            settings.openai_api_key,
            settings.webhook_secret,
            settings.database_url,
            settings.redis_url,
        ),
    )

    app = Flask("webapp")
    # Every JSON body is decoded with a bound on its nesting, request.get_json included.
    app.json = BoundedJSONProvider(app)
    app.config.update(
        SERVICE_NAME=service,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={
            # Connections each worker keeps open, and twice as many more opened for a burst
            # and closed when it is over; a thread finding all of them in use waits for one
            # (pool_timeout). See app_database_pool_size in roles/app/defaults/main.yml.
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_pool_size * DATABASE_POOL_OVERFLOW_FACTOR,
            # Connections die with database restarts and failovers. They are not tested before
            # each use (pool_pre_ping: a round trip on every checkout, 3 per streamed reply):
            # the request that meets a dead one gets a 503 and SQLAlchemy invalidates the
            # pool (webapp/error_handlers.py). Recycling bounds a connection's age, ahead of
            # the idle timeouts of firewalls and NAT between app and database hosts.
            "pool_recycle": DATABASE_POOL_RECYCLE,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT},
        },
        **jwt_config(settings),
    )
    app.extensions["settings"] = settings
    # app.logger is the "webapp" logger, parent of every module logger in the package.
    app.logger.setLevel(settings.log_level)

    db.init_app(app)
    migrate.init_app(app, db)
    # One client (and connection pool) per process; redis-py is thread-safe.
    app.extensions[REDIS_EXTENSION] = pooled_redis(
        settings.redis_url, max_connections=REDIS_POOL_SIZE, socket_timeout=CONNECT_TIMEOUT
    )
    init_jwt(app, app.extensions[REDIS_EXTENSION])
    init_cors(app, settings.cors_origins)
    # Whatever the app answered, the part of the body it did not read is drained (under ProxyFix,
    # which only rewrites the environ). Flask documents wrapping wsgi_app in middleware; mypy
    # sees an assignment to a method, hence the ignores.
    app.wsgi_app = UnreadBodyDrain(app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxy_count:
        # The client address (for per-IP rate limits) from nginx's X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count)  # type: ignore[method-assign]

    register_error_handlers(app)
    init_request_ids(app)
    # Before any rule is added: rules are bound to their converters as they are added.
    app.url_map.converters.update(ID_CONVERTERS)
    app.register_blueprint(health_bp)
    _register_service_blueprints(app, service)
    register_pages(app, service)
    register_api_docs(app, service)
    metrics.init_app(app)
    init_rate_limits(app, settings, app.extensions[REDIS_EXTENSION])
    register_commands(app)
    return app


def _register_service_blueprints(app: Flask, service: str) -> None:
    # Imported here, not at module level: importing the chat blueprint imports the bot.
    for each in services_list.SERVICES:
        if service in (each.name, services_list.ALL):
            for module in each.api_modules:
                app.register_blueprint(import_module(module).bp)
