"""Routes of the admin service, under ``/api/v1/admin``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from webapp.extensions import db
from webapp.security import admin_required
from webapp.services import accounts, stats

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

# Ids beyond the INTEGER column range can match nothing: 404 in routing, not a database error.
_USER = "<int(min=1, max=2147483647):user_id>"


@bp.get("/stats")
@admin_required
def get_stats() -> dict[str, int]:
    """Return counts of users, conversations and messages."""
    return stats.collect_stats(db.session)


@bp.post(f"/users/{_USER}/disable")
@admin_required
def disable_user(user_id: int) -> dict[str, Any]:
    """Disable an account: it can no longer log in and every token it holds stops working.

    409 for the last active admin; 404 for an unknown id.
    """
    user = accounts.set_user_active(db.session, user_id=user_id, active=False)
    return {"user": accounts.user_to_dict(user)}


@bp.post(f"/users/{_USER}/enable")
@admin_required
def enable_user(user_id: int) -> dict[str, Any]:
    """Enable a disabled account; it must log in again (its old tokens stay revoked)."""
    user = accounts.set_user_active(db.session, user_id=user_id, active=True)
    return {"user": accounts.user_to_dict(user)}
