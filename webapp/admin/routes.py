"""Routes of the admin service, under ``/api/v1/admin``."""

from __future__ import annotations

from flask import Blueprint

from webapp.extensions import db
from webapp.security import admin_required
from webapp.services import stats

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")


@bp.get("/stats")
@admin_required
def get_stats() -> dict[str, int]:
    """Return counts of users, conversations and messages."""
    return stats.collect_stats(db.session)
