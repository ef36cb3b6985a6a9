"""Model choice routes of the chat service: the models a user may pick, and their default.

They register on the chat blueprint defined in :mod:`webapp.chat.routes`; the logic is in
:mod:`webapp.services.model_choice`. A conversation's own model is set with the conversation
(:mod:`webapp.chat.conversations`).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_jwt_extended import current_user, jwt_required

from webapp.chat.routes import bp
from webapp.chat.runtime import current_catalogue
from webapp.extensions import db
from webapp.request_models.chat import PreferencesUpdate
from webapp.request_models.parsing import accepts
from webapp.services import model_choice


@bp.get("/models")
@jwt_required()
def list_models() -> dict[str, Any]:
    """List the models the caller may choose, and the system default: ``{models, default}``."""
    return model_choice.models_to_dict(
        current_catalogue(current_app, without_redis=True), current_user.role
    )


@bp.get("/preferences")
@jwt_required()
def get_preferences() -> dict[str, Any]:
    """Return the caller's chat preferences: ``{"default_model": name | null}``."""
    return model_choice.preferences_to_dict(current_user)


@bp.patch("/preferences")
@jwt_required()
@accepts(body=PreferencesUpdate)
def update_preferences(body: PreferencesUpdate) -> dict[str, Any]:
    """Set the caller's default model: ``{"default_model": name | null}``."""
    name = body.default_model
    if name is not None:
        model_choice.check_model(
            current_catalogue(current_app, without_redis=True),
            name,
            current_user.role,
            field="default_model",
        )
    user = model_choice.set_default_model(db.session(), current_user, name)
    return model_choice.preferences_to_dict(user)
