"""System status for the admin console: database, Redis, model provider, migrations, services.

Every check has a short timeout and reports instead of raising, so the page answers (within a
few seconds) whatever is down. Reasons are exception class names and HTTP statuses only:
messages can carry host names, and a provider's error may quote part of the API key.

Plain Python: the caller passes the engine, the Redis client and the settings. The OpenAI
client is imported only when a provider is configured; LangChain is never imported here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from webapp import __version__
from webapp.settings import Settings

__all__ = ["CHECK_TIMEOUT_SECONDS", "collect_status"]

CHECK_TIMEOUT_SECONDS = 3.0
# The model name that always means the built-in model (webapp.llm.offline.OFFLINE_MODEL_NAME,
# not imported: that would load LangChain into the admin process).
_OFFLINE = "offline"
_PLACEHOLDER_API_KEY = "not-needed"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _failure(exc: BaseException, started: float) -> dict[str, Any]:
    return {
        "status": "unavailable",
        "error": type(exc).__name__,
        "latency_ms": _elapsed_ms(started),
    }


def _database(engine: Engine, migrations_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            latency = _elapsed_ms(started)
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:  # any failure is the database's state, reported
        return {**_failure(exc, started), "migration": None}
    config = Config(str(migrations_dir / "alembic.ini"))
    config.set_main_option("script_location", str(migrations_dir))
    head = ScriptDirectory.from_config(config).get_current_head()
    return {
        "status": "ok",
        "latency_ms": latency,
        "migration": {"current": current, "head": head, "up_to_date": current == head},
    }


def _redis(client: Redis) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:  # a down Redis is reported, not raised
        return _failure(exc, started)
    return {"status": "ok", "latency_ms": _elapsed_ms(started)}


def _model(settings: Settings, timeout: float) -> dict[str, Any]:
    provider_configured = bool(settings.openai_api_key or settings.openai_base_url)
    if settings.llm_model == _OFFLINE or not provider_configured:
        return {"status": "ok", "provider": "offline", "model": _OFFLINE}
    provider = "openai-compatible" if settings.openai_base_url else "openai"
    started = time.perf_counter()
    try:
        from openai import OpenAI

        client = OpenAI(
            api_key=settings.openai_api_key or _PLACEHOLDER_API_KEY,
            base_url=settings.openai_base_url or None,
            timeout=timeout,
            max_retries=0,
        )
        try:
            available = [model.id for model in client.models.list()]
        finally:
            client.close()
    except Exception as exc:  # the provider's state, reported without its message
        return {**_failure(exc, started), "provider": provider, "model": settings.llm_model}
    return {
        "status": "ok",
        "provider": provider,
        "model": settings.llm_model,
        # Some servers list nothing or only aliases: informative, not a failure.
        "model_listed": settings.llm_model in available,
        "latency_ms": _elapsed_ms(started),
    }


def _service(url: str, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = httpx.get(f"{url}/health", timeout=timeout, follow_redirects=False)
    except Exception as exc:  # connection refused, timeout: reported
        return {**_failure(exc, started), "url": url}
    ok = response.status_code == 200
    result: dict[str, Any] = {
        "status": "ok" if ok else "unavailable",
        "url": url,
        "latency_ms": _elapsed_ms(started),
    }
    if not ok:
        result["error"] = f"HTTP {response.status_code}"
    return result


def collect_status(
    *,
    engine: Engine,
    redis_client: Redis,
    settings: Settings,
    migrations_dir: Path,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Check every part of the system and report each one's state.

    The checks run in parallel, each bounded by ``timeout`` (the database and Redis by their
    connection timeouts).

    Args:
        engine: The app's database engine.
        redis_client: The app's Redis client.
        settings: The process settings (model provider, ``STATUS_SERVICE_URLS``).
        migrations_dir: The packaged migrations, for the head revision.
        timeout: Seconds each HTTP check may take.

    Returns:
        ``status`` (``ok`` if every part is, else ``degraded``), ``version``, ``database``
        (with ``migration``: current, head, up_to_date), ``redis``, ``model`` and
        ``services`` (auth, chat, admin).
    """
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "database": lambda: _database(engine, migrations_dir),
        "redis": lambda: _redis(redis_client),
        "model": lambda: _model(settings, timeout),
    }
    for name, url in settings.status_service_urls:
        checks[f"service:{name}"] = functools.partial(_service, url, timeout)
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        results = {name: future.result() for name, future in futures.items()}
    services = {
        name.split(":", 1)[1]: result
        for name, result in results.items()
        if name.startswith("service:")
    }
    parts = [results["database"], results["redis"], results["model"], *services.values()]
    migration = results["database"].get("migration") or {}
    healthy = all(part["status"] == "ok" for part in parts) and migration.get("up_to_date", False)
    return {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "database": results["database"],
        "redis": results["redis"],
        "model": results["model"],
        "services": services,
    }
