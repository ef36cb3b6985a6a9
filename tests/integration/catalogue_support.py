"""Helpers for the model choice tests: providers and models written to the catalogue tables the
way an admin change lands (committed, then the catalogue version bumped in Redis)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import delete, update

from webapp.extensions import db, get_redis
from webapp.llm.catalogue import bump_catalogue_version
from webapp.models import ChatModel, Provider, User
from webapp.secretbox import SecretBox


def _announce(app: Flask) -> None:
    bump_catalogue_version(get_redis(app))


def add_provider(
    app: Flask,
    name: str,
    base_url: str,
    *,
    api_key: str | None = None,
    extra_headers: dict[str, str] | None = None,
    timeout_seconds: float = 30.0,
) -> int:
    """Store a provider (its key sealed with PROVIDER_KEY_SECRETS); return its id."""
    with app.app_context():
        box = SecretBox(app.extensions["settings"].provider_key_secrets)
        provider = Provider(
            name=name,
            kind="openai",
            base_url=base_url,
            api_key_encrypted=box.seal(api_key) if api_key else None,
            api_key_last4=api_key[-4:] if api_key else None,
            timeout_seconds=timeout_seconds,
            extra_headers=extra_headers or {},
        )
        db.session.add(provider)
        db.session.commit()
        provider_id = provider.id
        db.session.remove()
    _announce(app)
    return provider_id


def add_model(
    app: Flask,
    provider_id: int,
    name: str,
    upstream_id: str,
    *,
    fallback: str | None = None,
    **fields: Any,
) -> int:
    """Store a model of a provider (``fallback`` by name); return its id."""
    with app.app_context():
        fallback_id = None
        if fallback is not None:
            fallback_id = db.session.scalar(
                db.select(ChatModel.id).where(ChatModel.name == fallback)
            )
        model = ChatModel(
            provider_id=provider_id,
            name=name,
            upstream_id=upstream_id,
            display_name=fields.pop("display_name", name.title()),
            fallback_model_id=fallback_id,
            **fields,
        )
        db.session.add(model)
        db.session.commit()
        model_id = model.id
        db.session.remove()
    _announce(app)
    return model_id


def delete_provider(app: Flask, provider_id: int) -> None:
    """Delete a provider and, with it, its models."""
    with app.app_context():
        db.session.execute(delete(Provider).where(Provider.id == provider_id))
        db.session.commit()
        db.session.remove()
    _announce(app)


def set_user(app: Flask, user_id: int, **values: Any) -> None:
    """Change a user's row (``daily_token_quota``, ``role``), as an admin would."""
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(**values))
        db.session.commit()
        db.session.remove()
