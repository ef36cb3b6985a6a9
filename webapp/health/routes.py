"""``/health`` (the process answers) and ``/ready`` (its dependencies answer too)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.errors import error_body
from webapp.extensions import db

bp = Blueprint("health", __name__)

REDIS_EXTENSION = "redis"


@bp.get("/health")
def health() -> dict[str, str]:
    """Report that the process is alive; touches no dependency."""
    return {"status": "ok", "service": current_app.config["SERVICE_NAME"]}


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
    client: Redis = current_app.extensions[REDIS_EXTENSION]
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
