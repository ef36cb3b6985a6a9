"""Users' choice of models: what they may pick, their default model, and the check of a pick.

The catalogue itself (`webapp.llm.catalogue`) says which models exist and who may use them;
this module answers for one user. Nothing here knows Flask's request: the caller hands in the
catalogue snapshot and the user.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from webapp.errors import ValidationError
from webapp.llm.catalogue import Catalogue, ModelEntry, ModelUnavailableError
from webapp.models import User

__all__ = [
    "check_model",
    "conversation_model",
    "models_to_dict",
    "preferences_to_dict",
    "set_default_model",
]


def check_model(catalogue: Catalogue, name: str, role: str, *, field: str = "model") -> str:
    """Return a model name a user of ``role`` may choose, or refuse it.

    Unknown, disabled and forbidden models get the same answer: a user cannot learn of models
    they may not use.

    Args:
        catalogue: The current catalogue.
        name: The model's catalogue name.
        role: The user's role.
        field: The request field that named it.

    Returns:
        The name.

    Raises:
        ValidationError: If the user may not use such a model (400 naming ``field``).
    """
    entry = catalogue.get(name)
    if entry is None or not entry.usable_by(role):
        raise ValidationError(
            f"{field} must be one of the models GET /api/v1/chat/models lists; {name!r} is not",
            field=field,
        )
    return name


def conversation_model(catalogue: Catalogue, role: str, *names: str | None) -> str | None:
    """Return the first of ``names`` the user may use (the conversation's, the user's default).

    None when none of them is usable: the reply answers with the system default (a model
    removed or disabled since it was chosen falls back quietly, it does not fail the reply).
    """
    for name in names:
        if name is not None:
            entry = catalogue.get(name)
            if entry is not None and entry.usable_by(role):
                return name
    return None


def _model_to_dict(entry: ModelEntry, default_name: str | None) -> dict[str, Any]:
    return {
        "name": entry.name,
        "display_name": entry.display_name,
        "description": entry.description,
        "context_window": entry.context_window,
        "max_output_tokens": entry.max_output_tokens,
        "is_default": entry.name == default_name,
    }


def models_to_dict(catalogue: Catalogue, role: str) -> dict[str, Any]:
    """Return the models a user of ``role`` may choose, and the one answering when none is.

    Args:
        catalogue: The current catalogue.
        role: The user's role.

    Returns:
        ``{"models": [...], "default": name}``: the system default as this role gets it
        (null, with no models, when admins left this role none).
    """
    try:
        default_name: str | None = catalogue.resolve(None, role).name
    except ModelUnavailableError:
        default_name = None
    return {
        "models": [_model_to_dict(entry, default_name) for entry in catalogue.usable_by(role)],
        "default": default_name,
    }


def preferences_to_dict(user: User) -> dict[str, Any]:
    """Return a user's chat preferences as the API gives them."""
    return {"default_model": user.default_model}


def set_default_model(session: Session, user: User, name: str | None) -> User:
    """Set the model of a user's conversations that choose none (checked by the caller).

    Args:
        session: Database session; committed.
        user: The user (loaded in ``session``).
        name: A catalogue name (`check_model`), or None for the system default.

    Returns:
        The user, updated.
    """
    user.default_model = name
    session.commit()
    return user
