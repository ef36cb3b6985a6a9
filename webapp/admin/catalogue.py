"""Admin routes of the model catalogue: ``/api/v1/admin/providers`` and ``/api/v1/admin/models``.

Registered on the admin blueprint. Thin like the other admin routes: parse, call
:mod:`webapp.services.catalogue_admin` (which checks every field, writes the audit log and
announces the change to every worker), serialise. An update passes only the fields the client
sent: a field left out stays as it is, a null clears it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from redis import Redis

from webapp.admin.routes import acting_admin, bp
from webapp.extensions import db, get_redis
from webapp.models import ChatModel, Provider
from webapp.request_models.admin import NoQuery
from webapp.request_models.catalogue import (
    ModelCreate,
    ModelUpdate,
    ProviderCreate,
    ProviderUpdate,
    fields_sent,
)
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.security import admin_required
from webapp.services import catalogue_admin as catalogue
from webapp.settings import Settings

# Ids beyond the column ranges can match nothing: 404 in routing, not a database error.
_PROVIDER = id_rule("provider_id", Provider.id)
_MODEL = id_rule("model_id", ChatModel.id)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _redis() -> Redis:
    return get_redis(current_app)


# --- providers ----------------------------------------------------------------------------------


@bp.get("/providers")
@admin_required
@accepts(query=NoQuery)
def list_providers(query: NoQuery) -> dict[str, Any]:
    """List every provider: the managed ones (from the settings) first, then by name."""
    return {"providers": catalogue.list_providers(db.session(), _settings())}


@bp.post("/providers")
@admin_required
@accepts(body=ProviderCreate)
def create_provider(body: ProviderCreate) -> tuple[dict[str, Any], int]:
    """Add an OpenAI-compatible provider: ``name`` and ``base_url`` required."""
    provider = catalogue.create_provider(
        db.session(),
        fields_sent(body),
        actor=acting_admin(),
        settings=_settings(),
        redis=_redis(),
    )
    return {"provider": catalogue.provider_to_dict(provider)}, 201


@bp.get(f"/providers/{_PROVIDER}")
@admin_required
def get_provider(provider_id: int) -> dict[str, Any]:
    """Return one stored provider."""
    provider = catalogue.get_provider(db.session(), provider_id)
    return {"provider": catalogue.provider_to_dict(provider)}


@bp.patch(f"/providers/{_PROVIDER}")
@admin_required
@accepts(body=ProviderUpdate)
def update_provider(provider_id: int, body: ProviderUpdate) -> dict[str, Any]:
    """Change a provider's fields (``api_key``: ``""`` removes it)."""
    provider = catalogue.update_provider(
        db.session(),
        provider_id,
        fields_sent(body),
        actor=acting_admin(),
        settings=_settings(),
        redis=_redis(),
    )
    return {"provider": catalogue.provider_to_dict(provider)}


@bp.delete(f"/providers/{_PROVIDER}")
@admin_required
def delete_provider(provider_id: int) -> Response:
    """Delete a provider with its models."""
    catalogue.delete_provider(db.session(), provider_id, actor=acting_admin(), redis=_redis())
    return Response(status=204)


@bp.post(f"/providers/{_PROVIDER}/discover")
@admin_required
def discover_models(provider_id: int) -> dict[str, Any]:
    """List the provider's models (its ``GET /models``), marking those already added."""
    return {"models": catalogue.discover_models(db.session(), provider_id, _settings())}


# --- models -------------------------------------------------------------------------------------


@bp.get("/models")
@admin_required
@accepts(query=NoQuery)
def list_models(query: NoQuery) -> dict[str, Any]:
    """List every model: the managed ones (from the settings) first, then by name."""
    return {"models": catalogue.list_models(db.session(), _settings())}


@bp.post("/models")
@admin_required
@accepts(body=ModelCreate)
def create_model(body: ModelCreate) -> tuple[dict[str, Any], int]:
    """Add a model to a stored provider: ``provider``, ``name`` and ``upstream_id`` required."""
    model = catalogue.create_model(
        db.session(),
        fields_sent(body),
        actor=acting_admin(),
        settings=_settings(),
        redis=_redis(),
    )
    return {"model": catalogue.model_to_dict(model)}, 201


@bp.get(f"/models/{_MODEL}")
@admin_required
def get_model(model_id: int) -> dict[str, Any]:
    """Return one stored model."""
    return {"model": catalogue.model_to_dict(catalogue.get_model(db.session(), model_id))}


@bp.patch(f"/models/{_MODEL}")
@admin_required
@accepts(body=ModelUpdate)
def update_model(model_id: int, body: ModelUpdate) -> dict[str, Any]:
    """Change a model's fields; null clears an optional one (``fallback``, prices...)."""
    model = catalogue.update_model(
        db.session(),
        model_id,
        fields_sent(body),
        actor=acting_admin(),
        settings=_settings(),
        redis=_redis(),
    )
    return {"model": catalogue.model_to_dict(model)}


@bp.delete(f"/models/{_MODEL}")
@admin_required
def delete_model(model_id: int) -> Response:
    """Delete a model."""
    catalogue.delete_model(db.session(), model_id, actor=acting_admin(), redis=_redis())
    return Response(status=204)


@bp.post(f"/models/{_MODEL}/test")
@admin_required
def test_model(model_id: int) -> dict[str, Any]:
    """Send the model one short request (16 tokens at most) and report how it went."""
    return catalogue.probe_model(db.session(), model_id, _settings())
