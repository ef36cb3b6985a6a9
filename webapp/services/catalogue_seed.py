"""Seed the model catalogue from a document (the playbook's inventory), and re-encrypt its keys.

:func:`seed_catalogue` creates the providers and models a document names that do not exist
yet, by name, and leaves the existing ones as admins left them, unless told to overwrite them:
run twice, it changes nothing the second time. Everything is checked by
:mod:`webapp.services.catalogue_admin`, exactly as for the admin API, recorded in the audit log
with the actor ``playbook``, and committed in one transaction (a bad entry changes nothing).

:func:`rekey_provider_keys` re-encrypts every stored provider key with the first
PROVIDER_KEY_SECRETS key (``MultiFernet.rotate``), so the previous key can then be retired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.errors import ApiError, ValidationError
from webapp.models import Provider
from webapp.secretbox import SecretBox, SecretBoxError
from webapp.services import audit
from webapp.services import catalogue_admin as catalogue
from webapp.settings import Settings

__all__ = ["REKEY_ACTION", "SeedError", "SeedSummary", "rekey_provider_keys", "seed_catalogue"]

REKEY_ACTION = "cli.provider_keys_rekeyed"
_SECTIONS = ("providers", "models")
# In a seed document a model's ``default`` is the API's ``is_default``.
_DEFAULT = "default"


class SeedError(Exception):
    """Raised when the document is malformed or an entry is refused; nothing was changed.

    The message names the entry (``models[2].fallback: ...``) and never holds a key.
    """


@dataclass
class Counts:
    """What happened to one kind of entry."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        """Say it in words: ``1 created, 0 updated, 2 unchanged``."""
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class SeedSummary:
    """What a seed run did.

    Attributes:
        providers: Counts of providers.
        models: Counts of models.
    """

    providers: Counts = field(default_factory=Counts)
    models: Counts = field(default_factory=Counts)

    def __str__(self) -> str:
        """Say it in one line."""
        return f"providers: {self.providers}; models: {self.models}"


def _entries(document: Any, section: str) -> list[Mapping[str, Any]]:
    entries = document.get(section, [])
    if not isinstance(entries, list):
        raise SeedError(f"{section} must be a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise SeedError(f"{section}[{index}] must be an object")
        if not isinstance(entry.get("name"), str):
            raise SeedError(f"{section}[{index}].name: a name is required")
    names = [entry["name"] for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SeedError(f"{section}: {duplicates[0]!r} is given twice")
    return entries


def _model_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(entry)
    if _DEFAULT in values:
        values["is_default"] = values.pop(_DEFAULT)
    return values


def _in_fallback_order(models: list[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """Order the models so that each one's fallback (if in the document) comes before it."""
    named = {entry["name"] for entry in models}
    placed: set[str] = set()
    ordered: list[tuple[int, Mapping[str, Any]]] = []
    pending = list(enumerate(models))
    for _ in range(len(models) + 1):
        waiting = []
        for index, entry in pending:
            fallback = entry.get("fallback")
            if fallback not in named or fallback in placed or fallback == entry["name"]:
                ordered.append((index, entry))
                placed.add(entry["name"])
            else:
                waiting.append((index, entry))
        pending = waiting
        if not pending:
            return ordered
    index, _ = pending[0]
    raise SeedError(f"models[{index}].fallback: the fallbacks of the document form a cycle")


def _apply(
    counts: Counts,
    existing: Any,
    create: Any,
    update: Any,
    *,
    overwrite: bool,
) -> None:
    if existing is None:
        create()
        counts.created += 1
    elif overwrite and update(existing):
        counts.updated += 1
    else:
        counts.unchanged += 1


def seed_catalogue(
    session: Session,
    document: Any,
    *,
    overwrite: bool,
    settings: Settings,
    redis: Redis,
) -> SeedSummary:
    """Create the document's providers and models that are missing, by name.

    Args:
        session: Database session; committed once (or rolled back) at the end.
        document: ``{"providers": [{name, base_url, api_key?, timeout_seconds?,
            extra_headers?}], "models": [{provider, name, upstream_id, ..., "default"?}]}``
            with the fields of the admin API.
        overwrite: Also set the given fields on entries that exist (else they are left as
            admins changed them).
        settings: The process settings (reserved names, PROVIDER_KEY_SECRETS).
        redis: The app's Redis, to announce the change.

    Returns:
        How many of each were created, updated and left unchanged.

    Raises:
        SeedError: Naming the entry at fault; nothing was changed.
    """
    if not isinstance(document, Mapping):
        raise SeedError("the document must be a JSON object with providers and models")
    unknown = sorted(set(document) - set(_SECTIONS))
    if unknown:
        raise SeedError(f"unknown section {unknown[0]!r} (expected providers, models)")
    providers = _entries(document, "providers")
    models = _entries(document, "models")
    summary = SeedSummary()
    where = ""
    try:
        for index, entry in enumerate(providers):
            where = f"providers[{index}]"
            _apply(
                summary.providers,
                catalogue.provider_named(session, entry["name"]),
                lambda e=entry: catalogue.create_provider_in(
                    session, e, actor=None, settings=settings
                ),
                lambda found, e=entry: catalogue.update_provider_in(
                    session, found, e, actor=None, settings=settings
                ),
                overwrite=overwrite,
            )
        for index, entry in _in_fallback_order(models):
            where = f"models[{index}]"
            values = _model_fields(entry)
            _apply(
                summary.models,
                catalogue.model_named(session, entry["name"]),
                lambda v=values: catalogue.create_model_in(
                    session, v, actor=None, settings=settings
                ),
                lambda found, v=values: catalogue.update_model_in(
                    session, found, v, actor=None, settings=settings
                ),
                overwrite=overwrite,
            )
    except ApiError as exc:
        session.rollback()
        field_name = f".{exc.field}" if exc.field else ""
        raise SeedError(f"{where}{field_name}: {exc.message}") from None
    if (
        summary.providers.created
        + summary.providers.updated
        + summary.models.created
        + (summary.models.updated)
    ):
        catalogue.commit_and_announce(session, redis)
    else:
        session.commit()
    return summary


def rekey_provider_keys(session: Session, *, settings: Settings, redis: Redis) -> int:
    """Re-encrypt every stored provider key with the first PROVIDER_KEY_SECRETS key.

    Args:
        session: Database session; committed.
        settings: The process settings (PROVIDER_KEY_SECRETS, newest first).
        redis: The app's Redis, to announce the change.

    Returns:
        How many keys were re-encrypted.

    Raises:
        ValidationError: If PROVIDER_KEY_SECRETS is not set, or a key was sealed with none of
            its keys (naming the provider); nothing was changed.
    """
    box = SecretBox(settings.provider_key_secrets)
    if not box.configured:
        raise ValidationError("PROVIDER_KEY_SECRETS is not set: there is no key to encrypt with")
    providers: Sequence[Provider] = session.scalars(
        select(Provider)
        .where(Provider.api_key_encrypted.is_not(None))
        .order_by(Provider.id)
        .with_for_update()
    ).all()
    for provider in providers:
        try:
            provider.api_key_encrypted = box.rotate(provider.api_key_encrypted or "")
        except SecretBoxError:
            session.rollback()
            raise ValidationError(
                f"the key of provider {provider.name!r} was sealed with none of the"
                " PROVIDER_KEY_SECRETS keys; nothing was re-encrypted"
            ) from None
    audit.record(session, action=REKEY_ACTION, details={"providers": len(providers)})
    catalogue.commit_and_announce(session, redis)
    return len(providers)
