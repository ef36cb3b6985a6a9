"""Admin routes of personal API keys, under ``/api/v1/admin/api-keys``: list and revoke anyone's.

Registered on the admin blueprint; the logic (and the audit record of a revocation) is in
:mod:`webapp.services.api_keys`.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from webapp.admin.routes import acting_admin, bp
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.request_models.admin import ApiKeyListQuery
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.security import admin_required
from webapp.services import api_keys

# Ids beyond the column's range can match nothing: 404 in routing, not a database error.
_API_KEY = id_rule("api_key_id", ApiKey.id)


@bp.get("/api-keys")
@admin_required
@accepts(query=ApiKeyListQuery)
def list_api_keys(query: ApiKeyListQuery) -> dict[str, Any]:
    """List every user's API keys that are not revoked, with their owner (``?user_id=``)."""
    keys = api_keys.list_all_keys(db.session(), user_id=query.user_id)
    return {"api_keys": [api_keys.admin_key_to_dict(key, email) for key, email in keys]}


@bp.delete(f"/api-keys/{_API_KEY}")
@admin_required
def revoke_api_key(api_key_id: int) -> Response:
    """Revoke anyone's API key: it stops working at once -> 204 (audited)."""
    api_keys.revoke_any_key(db.session(), actor=acting_admin(), key_id=api_key_id)
    return Response(status=204)
