"""System status for the admin console: database, Redis, model providers, migrations, services.

Every check has a short timeout and reports instead of raising, so the page answers (within a
few seconds) whatever is down. Reasons are exception class names and HTTP statuses only:
messages can carry host names, and a provider's error may quote part of the API key.

Plain Python: the caller passes the engine, the Redis client, the settings and the catalogue's
providers (each asked for its model list, concurrently, with a short timeout). The OpenAI
client is imported only when a provider is configured; LangChain is never imported here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from webapp import __version__
from webapp.services import provider_requests
from webapp.services.provider_requests import Upstream
from webapp.settings import Settings

if TYPE_CHECKING:
    from webapp.llm.catalogue import ProviderEntry

__all__ = ["CHECK_TIMEOUT_SECONDS", "PROVIDER_CHECKS_AT_ONCE", "collect_status"]

CHECK_TIMEOUT_SECONDS = 3.0
PROVIDER_CHECKS_AT_ONCE = 8
"""Providers asked at once: the page takes about 3 s per this many providers, at most."""
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


def _provider(entry: ProviderEntry, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "managed": entry.managed}
    if entry.kind == "offline":
        return {**result, "status": "ok"}  # built in: nothing to reach
    if entry.key_error is not None:
        return {**result, "status": "unavailable", "error": "SecretBoxError"}
    upstream = Upstream(
        base_url=entry.base_url or "https://api.openai.com/v1",
        api_key=entry.api_key or None,
        timeout=entry.timeout,
        headers=dict(entry.extra_headers),
    )
    started = time.perf_counter()
    try:
        provider_requests.list_models(upstream, timeout=min(timeout, entry.timeout))
    except provider_requests.UPSTREAM_ERRORS as exc:
        return {
            **result,
            "status": "unavailable",
            "error": provider_requests.failure_reason(exc),
            "latency_ms": _elapsed_ms(started),
        }
    return {**result, "status": "ok", "latency_ms": _elapsed_ms(started)}


def _from_model_check(entry: ProviderEntry, model: dict[str, Any]) -> dict[str, Any]:
    # The environment provider is the one the model check already asked: once is enough.
    result = {"name": entry.name, "kind": entry.kind, "managed": entry.managed}
    return {**result, **{k: v for k, v in model.items() if k in ("status", "latency_ms", "error")}}


def _providers(
    load: Callable[[], Sequence[ProviderEntry]], timeout: float
) -> tuple[Sequence[ProviderEntry], list[dict[str, Any] | None]]:
    try:
        entries = load()
    except Exception:  # the catalogue is in the database: its state is reported there
        return (), []
    asked = [i for i, e in enumerate(entries) if not (e.managed and e.kind != "offline")]
    checked: list[dict[str, Any] | None] = [None] * len(entries)
    if not asked:
        return entries, checked
    with ThreadPoolExecutor(max_workers=min(len(asked), PROVIDER_CHECKS_AT_ONCE)) as pool:
        answers = pool.map(lambda i: _provider(entries[i], timeout), asked)
        for index, answer in zip(asked, answers, strict=True):
            checked[index] = answer
    return entries, checked


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
    providers: Callable[[], Sequence[ProviderEntry]] = tuple,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Check every part of the system and report each one's state.

    The checks run in parallel, each bounded by ``timeout`` (the database and Redis by their
    connection timeouts); the providers at most ``PROVIDER_CHECKS_AT_ONCE`` at a time.

    Args:
        engine: The app's database engine.
        redis_client: The app's Redis client.
        settings: The process settings (model provider, ``STATUS_SERVICE_URLS``).
        migrations_dir: The packaged migrations, for the head revision.
        providers: Loads the catalogue's providers (managed and stored); a failure (the
            database is down) leaves ``providers`` empty.
        timeout: Seconds each HTTP check may take.

    Returns:
        ``status`` (``ok`` if every part is, else ``degraded``), ``version``, ``database``
        (with ``migration``: current, head, up_to_date), ``redis``, ``model`` (LLM_MODEL's
        provider), ``providers`` (each one's reachability: name, kind, managed, status,
        latency_ms, error) and ``services`` (auth, chat, admin).
    """
    checks: dict[str, Callable[[], Any]] = {
        "database": lambda: _database(engine, migrations_dir),
        "redis": lambda: _redis(redis_client),
        "model": lambda: _model(settings, timeout),
        "providers": lambda: _providers(providers, timeout),
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
    entries, checked = results["providers"]
    provider_results = [
        result if result is not None else _from_model_check(entry, results["model"])
        for entry, result in zip(entries, checked, strict=True)
    ]
    parts = [
        results["database"],
        results["redis"],
        results["model"],
        *provider_results,
        *services.values(),
    ]
    migration = results["database"].get("migration") or {}
    healthy = all(part["status"] == "ok" for part in parts) and migration.get("up_to_date", False)
    return {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "database": results["database"],
        "redis": results["redis"],
        "model": results["model"],
        "providers": provider_results,
        "services": services,
    }
