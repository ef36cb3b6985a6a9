"""``/health`` (the process answers) and ``/ready`` (its dependencies answer too)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp import __version__
from webapp.errors import error_body
from webapp.extensions import db, get_redis

bp = Blueprint("health", __name__)


def release_name(prefix: str = sys.prefix) -> str | None:
    """Return the release this process runs, from its virtualenv's place on disk.

    A deployed release lives in ``<app root>/releases/<name>/venv``; anything else (a
    development checkout) has no release name.

    Args:
        prefix: The virtualenv's directory.

    Returns:
        ``<name>``, or None outside a release directory.
    """
    release = Path(prefix).parent
    return release.name if release.parent.name == "releases" else None


_RELEASE = release_name()


@bp.get("/health")
def health() -> dict[str, Any]:
    """Report that the process is alive and which version and release answer; no dependency."""
    return {
        "status": "ok",
        "service": current_app.config["SERVICE_NAME"],
        "version": __version__,
        "release": _RELEASE,
    }


def _database_ok() -> bool:
    try:
        # A connection of its own, outside the request session, so a failed probe cannot
        # leave the session in a failed transaction.
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        current_app.logger.warning("readiness: database check failed", exc_info=True)
        return False
    return True


def _redis_ok() -> bool:
    client = get_redis(current_app)
    try:
        client.ping()
    except (RedisError, OSError):
        current_app.logger.warning("readiness: redis check failed", exc_info=True)
        return False
    return True


@bp.get("/ready")
def ready() -> tuple[dict[str, Any], int]:
    """Report whether the database and Redis answer; 503 naming whichever does not."""
    checks = {
        "database": "ok" if _database_ok() else "unavailable",
        "redis": "ok" if _redis_ok() else "unavailable",
    }
    body: dict[str, Any] = {"service": current_app.config["SERVICE_NAME"], "checks": checks}
    failed = [name for name, state in checks.items() if state != "ok"]
    if not failed:
        return {"status": "ok", **body}, 200
    # The same error shape as every other API error, plus the per-dependency detail. The
    # reasons go to the log only: they can contain host names an outsider need not see.
    message = f"Not ready: {', '.join(failed)} unavailable."
    return {"status": "unavailable", **body, **error_body("service_unavailable", message)}, 503
