"""The model catalogue's admin side: stored providers and models, created, changed, tested.

Plain Python: the caller passes the session, the settings (managed names, the key-encryption
secrets) and the Redis client (the catalogue version every worker watches). Every change is
checked here (:mod:`webapp.services.catalogue_fields`), whoever makes it: an admin through the
API, or the playbook through ``chatbot catalogue seed`` (:mod:`webapp.services.catalogue_seed`,
actor ``playbook``). It is recorded in the audit log in its own transaction and announced after
COMMIT with :func:`~webapp.llm.catalogue.bump_catalogue_version`, so every worker of every host
uses it from its next request on.

Provider API keys are sealed with :mod:`webapp.secretbox` before they reach the session, and
leave this module only opened, for a request to their provider: never in a response (``{"set",
"last4"}``), an audit event (only the names of the fields changed) or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.errors import ConflictError, NotFoundError, UpstreamError, ValidationError
from webapp.llm.catalogue import (
    ModelEntry,
    ProviderEntry,
    bump_catalogue_version,
    load_catalogue,
    managed_names,
)
from webapp.models import USER_ROLES, ChatModel, Provider, isoformat_utc
from webapp.secretbox import SecretBox, SecretBoxError
from webapp.services import audit, provider_requests
from webapp.services import catalogue_fields as fields
from webapp.services.audit import Actor
from webapp.services.provider_requests import Upstream
from webapp.settings import Settings

__all__ = [
    "ACTIONS",
    "MASK",
    "PLAYBOOK",
    "KeyEncryptionUnavailableError",
    "commit_and_announce",
    "create_model",
    "create_model_in",
    "create_provider",
    "create_provider_in",
    "delete_model",
    "delete_provider",
    "discover_models",
    "get_model",
    "get_provider",
    "list_models",
    "list_providers",
    "load_providers",
    "model_named",
    "model_to_dict",
    "probe_model",
    "provider_named",
    "provider_to_dict",
    "update_model",
    "update_model_in",
    "update_provider",
    "update_provider_in",
    "upstream_of",
]

logger = logging.getLogger(__name__)

PLAYBOOK = "playbook"
"""The actor recorded for the changes of ``chatbot catalogue seed`` (the playbook runs it)."""
MASK = "***"
"""What the API shows of an extra header's value (it may carry a credential)."""


ACTIONS: dict[str, str] = {
    "provider.create": "A model provider was added (details: name, base_url, the fields set).",
    "provider.update": "A model provider was changed (details: the names of the fields changed).",
    "provider.delete": "A model provider was deleted with its models (details: name, models).",
    "model.create": "A catalogue model was added (details: name, provider, upstream_id).",
    "model.update": "A catalogue model was changed (details: the names of the fields changed).",
    "model.delete": "A catalogue model was deleted (details: name).",
}
"""The audit actions of the catalogue; the changes of ``chatbot catalogue seed`` have no actor
and ``details.actor`` ``playbook``."""

PROVIDER_FIELDS = ("name", "base_url", "api_key", "timeout_seconds", "extra_headers")
MODEL_FIELDS = (
    "provider",
    "name",
    "upstream_id",
    "display_name",
    "description",
    "context_window",
    "max_output_tokens",
    "default_temperature",
    "enabled",
    "allowed_roles",
    "fallback",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "is_default",
)
# A key this short would be half given away by its last four characters.
_LAST4_MIN_KEY_LENGTH = 8
_NO_KEY_ENCRYPTION = (
    "Provider API keys cannot be stored: PROVIDER_KEY_SECRETS is not set on the server."
)
_UNREADABLE_KEY = (
    "The provider's API key cannot be decrypted with PROVIDER_KEY_SECRETS (its secret was"
    " retired before `chatbot catalogue rekey`): set the key again."
)

T = TypeVar("T")
Stored = TypeVar("Stored", Provider, ChatModel)
_KINDS: dict[type, str] = {Provider: "provider", ChatModel: "model"}


class KeyEncryptionUnavailableError(ConflictError):
    """Raised when a provider key is to be stored but PROVIDER_KEY_SECRETS is not set."""

    code = "key_encryption_unavailable"


# --- serialisation ------------------------------------------------------------------------------


def _key_state(key_set: bool, last4: str | None) -> dict[str, Any]:
    return {"set": key_set, "last4": last4 if key_set else None}


def _last4(key: str) -> str | None:
    return key[-4:] if len(key) >= _LAST4_MIN_KEY_LENGTH else None


def provider_to_dict(provider: Provider) -> dict[str, Any]:
    """Return the JSON representation of a stored provider (of its key: only set and last 4).

    Args:
        provider: The provider.

    Returns:
        ``{"id", "name", "kind", "base_url", "timeout_seconds", "extra_headers" (values
        masked), "api_key": {"set", "last4"}, "managed": false, "created_at", "updated_at"}``.
    """
    return {
        "id": provider.id,
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "timeout_seconds": provider.timeout_seconds,
        "extra_headers": dict.fromkeys(provider.extra_headers or {}, MASK),
        "api_key": _key_state(provider.api_key_encrypted is not None, provider.api_key_last4),
        "managed": False,
        "created_at": isoformat_utc(provider.created_at),
        "updated_at": isoformat_utc(provider.updated_at),
    }


def _managed_provider_to_dict(entry: ProviderEntry) -> dict[str, Any]:
    return {
        "id": None,
        "name": entry.name,
        "kind": entry.kind,
        "base_url": entry.base_url,
        "timeout_seconds": entry.timeout,
        "extra_headers": dict.fromkeys(entry.extra_headers, MASK),
        "api_key": _key_state(bool(entry.api_key), _last4(entry.api_key)),
        "managed": True,
        "created_at": None,
        "updated_at": None,
    }


def _roles_in_order(roles: Any) -> list[str]:
    return [role for role in USER_ROLES if role in roles]


def model_to_dict(model: ChatModel) -> dict[str, Any]:
    """Return the JSON representation of a stored model.

    Args:
        model: The model (its provider and fallback load on access).

    Returns:
        The model's fields (see the OpenAPI document): ``provider`` and ``fallback`` by name,
        prices as decimal strings.
    """
    return {
        "id": model.id,
        "name": model.name,
        "provider": model.provider.name,
        "upstream_id": model.upstream_id,
        "display_name": model.display_name,
        "description": model.description,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "default_temperature": model.default_temperature,
        "enabled": model.enabled,
        "allowed_roles": _roles_in_order(model.allowed_roles),
        "fallback": None if model.fallback is None else model.fallback.name,
        "price_input_per_mtok": fields.format_decimal(model.price_input_per_mtok),
        "price_output_per_mtok": fields.format_decimal(model.price_output_per_mtok),
        "is_default": model.is_default,
        "managed": False,
        "created_at": isoformat_utc(model.created_at),
        "updated_at": isoformat_utc(model.updated_at),
    }


def _managed_model_to_dict(entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": None,
        "name": entry.name,
        "provider": entry.provider.name,
        "upstream_id": entry.upstream_id,
        "display_name": entry.display_name,
        "description": entry.description,
        "context_window": entry.context_window,
        "max_output_tokens": entry.max_output_tokens,
        "default_temperature": entry.default_temperature,
        "enabled": entry.enabled,
        "allowed_roles": _roles_in_order(entry.allowed_roles),
        "fallback": entry.fallback,
        "price_input_per_mtok": fields.format_decimal(entry.price_input),
        "price_output_per_mtok": fields.format_decimal(entry.price_output),
        "is_default": entry.is_default,
        "managed": True,
        "created_at": None,
        "updated_at": None,
    }


# --- transactions and the audit log -------------------------------------------------------------


def _audit(
    session: Session,
    actor: Actor | None,
    action: str,
    target: Provider | ChatModel,
    **details: Any,
) -> None:
    audit.record(
        session,
        action=action,
        actor=None if actor is None else actor.user,
        target_type=_KINDS[type(target)],
        target_id=target.id,
        source_ip=None if actor is None else actor.source_ip,
        details={"actor": PLAYBOOK, **details} if actor is None else details,
    )


def commit_and_announce(session: Session, redis: Redis) -> None:
    """Commit a catalogue change, then tell every worker (a new catalogue version).

    Args:
        session: The session holding the change.
        redis: The app's Redis.

    Raises:
        ConflictError: If a unique index refused the change (a concurrent one took the name,
            or made another model the default at the same instant).
    """
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            "a concurrent change took this name or the default; try again", field="name"
        ) from None
    try:
        bump_catalogue_version(redis)
    except RedisError as exc:
        # Committed: workers load it at the next change; the operator must know meanwhile.
        logger.error(
            "catalogue change committed but not announced (Redis: %s): workers keep the"
            " previous catalogue until the next change",
            type(exc).__name__,
        )


def _change(session: Session, redis: Redis, work: Callable[[], tuple[T, bool]]) -> T:
    """Run a change; commit it, and announce it when something changed.

    A refused change is rolled back: nothing of it stays in the session.
    """
    try:
        result, changed = work()
    except Exception:
        session.rollback()
        raise
    if changed:
        commit_and_announce(session, redis)
    else:
        session.commit()
    return result


def _find(session: Session, entity: type[Stored], entity_id: int, *, lock: bool = False) -> Stored:
    found = session.get(entity, entity_id, with_for_update=lock)
    if found is None:
        raise NotFoundError(f"{_KINDS[entity]} not found")
    return found


def _named(session: Session, entity: type[Stored], name: str) -> Stored | None:
    return session.scalars(select(entity).where(entity.name == name)).one_or_none()


# --- providers ----------------------------------------------------------------------------------


def list_providers(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Return every provider as JSON: the managed ones first, then the stored ones by name.

    Args:
        session: Database session.
        settings: The process settings (the managed providers).

    Returns:
        The providers' representations.
    """
    catalogue = load_catalogue(session, settings, SecretBox(settings.provider_key_secrets))
    managed = [p for p in catalogue.providers if p.managed]
    stored = session.scalars(select(Provider).order_by(Provider.name))
    return [*map(_managed_provider_to_dict, managed), *map(provider_to_dict, stored)]


def load_providers(engine: Engine, settings: Settings) -> tuple[ProviderEntry, ...]:
    """Return the catalogue's providers, managed and stored, keys opened (the status page's).

    Uses a session of its own, so it can run in any thread.
    """
    with Session(engine) as session:
        box = SecretBox(settings.provider_key_secrets)
        return load_catalogue(session, settings, box).providers


def get_provider(session: Session, provider_id: int) -> Provider:
    """Return a stored provider.

    Raises:
        NotFoundError: If there is none with this id.
    """
    return _find(session, Provider, provider_id)


def provider_named(session: Session, name: str) -> Provider | None:
    """Return the stored provider of that name, if any."""
    return _named(session, Provider, name)


def model_named(session: Session, name: str) -> ChatModel | None:
    """Return the stored model of that name, if any."""
    return _named(session, ChatModel, name)


def _provider_name(value: Any, settings: Settings) -> str:
    name = fields.provider_name(value)
    if name in managed_names(settings)[0]:
        raise ConflictError(
            f"name {name!r} is a managed provider's (from the settings)", field="name"
        )
    return name


def _opened_key(provider: Provider, box: SecretBox) -> str | None:
    if provider.api_key_encrypted is None:
        return None
    try:
        return box.open(provider.api_key_encrypted)
    except SecretBoxError:
        return None  # unreadable: whatever key is given now replaces it


def _apply_provider(
    session: Session, provider: Provider, changes: Mapping[str, Any], settings: Settings
) -> list[str]:
    """Check and apply provider fields; return the names of those that changed."""
    fields.unknown_fields(changes, PROVIDER_FIELDS)
    changed: list[str] = []

    def assign(name: str, value: Any) -> None:
        if getattr(provider, name) != value:
            setattr(provider, name, value)
            changed.append(name)

    if "name" in changes:
        name = _provider_name(changes["name"], settings)
        if name != provider.name and provider_named(session, name) is not None:
            raise ConflictError(f"a provider named {name!r} exists", field="name")
        assign("name", name)
    if "base_url" in changes:
        assign("base_url", fields.base_url(changes["base_url"]))
    if "timeout_seconds" in changes:
        value = changes["timeout_seconds"]
        assign(
            "timeout_seconds",
            fields.DEFAULT_TIMEOUT_SECONDS if value is None else fields.timeout(value),
        )
    if "extra_headers" in changes:
        assign("extra_headers", fields.headers(changes["extra_headers"]))
    if "api_key" in changes:
        key = fields.api_key(changes["api_key"])
        box = SecretBox(settings.provider_key_secrets)
        if key is None:
            if provider.api_key_encrypted is not None:
                provider.api_key_encrypted = provider.api_key_last4 = None
                changed.append("api_key")
        elif not box.configured:
            raise KeyEncryptionUnavailableError(_NO_KEY_ENCRYPTION, field="api_key")
        elif key != _opened_key(provider, box):
            provider.api_key_encrypted = box.seal(key)
            provider.api_key_last4 = _last4(key)
            changed.append("api_key")
    return changed


def create_provider_in(
    session: Session, values: Mapping[str, Any], *, actor: Actor | None, settings: Settings
) -> Provider:
    """Add a provider to the session and audit it, without committing (see `create_provider`)."""
    fields.unknown_fields(values, PROVIDER_FIELDS)
    for required in ("name", "base_url"):
        if values.get(required) is None:
            raise ValidationError(f"{required} is required", field=required)
    name = _provider_name(values["name"], settings)
    if provider_named(session, name) is not None:
        raise ConflictError(f"a provider named {name!r} exists", field="name")
    provider = Provider(
        name=name,
        kind="openai",
        base_url="",
        timeout_seconds=fields.DEFAULT_TIMEOUT_SECONDS,
        extra_headers={},
    )
    _apply_provider(session, provider, {k: v for k, v in values.items() if k != "name"}, settings)
    session.add(provider)
    session.flush()
    _audit(
        session,
        actor,
        "provider.create",
        provider,
        name=provider.name,
        base_url=provider.base_url,
        fields=sorted(k for k, v in values.items() if v is not None),
    )
    return provider


def create_provider(
    session: Session,
    values: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis,
) -> Provider:
    """Create a provider (an OpenAI-compatible server).

    Args:
        session: Database session; committed.
        values: ``name`` and ``base_url`` (required), ``api_key``, ``timeout_seconds``,
            ``extra_headers``.
        actor: The admin, for the audit log; None for the playbook.
        settings: The process settings (reserved names, PROVIDER_KEY_SECRETS).
        redis: The app's Redis, to announce the change.

    Returns:
        The new provider.

    Raises:
        ValidationError: Naming the field at fault.
        ConflictError: A taken or managed name; ``key_encryption_unavailable`` for a key
            while PROVIDER_KEY_SECRETS is not set.
    """
    return _change(
        session,
        redis,
        lambda: (create_provider_in(session, values, actor=actor, settings=settings), True),
    )


def update_provider_in(
    session: Session,
    provider: Provider,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
) -> list[str]:
    """Change a provider in the session and audit it, without committing; return what changed."""
    changed = _apply_provider(session, provider, changes, settings)
    if changed:
        session.flush()
        _audit(session, actor, "provider.update", provider, name=provider.name, changed=changed)
    return changed


def update_provider(
    session: Session,
    provider_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis,
) -> Provider:
    """Change a stored provider's fields (those in ``changes``).

    Args:
        session: Database session; committed.
        provider_id: The provider.
        changes: Fields to change (``api_key``: ``""`` or None removes it; a null
            ``timeout_seconds`` restores the default).
        actor: The admin, for the audit log.
        settings: The process settings.
        redis: The app's Redis, to announce the change.

    Returns:
        The provider (unchanged, and nothing recorded, when nothing differs).

    Raises:
        NotFoundError: If there is no such provider.
        ValidationError: Naming the field at fault.
        ConflictError: As for `create_provider`.
    """

    def work() -> tuple[Provider, bool]:
        provider = _find(session, Provider, provider_id, lock=True)
        changed = update_provider_in(session, provider, changes, actor=actor, settings=settings)
        return provider, bool(changed)

    return _change(session, redis, work)


def delete_provider(
    session: Session, provider_id: int, *, actor: Actor | None, redis: Redis
) -> None:
    """Delete a stored provider with its models; models elsewhere lose them as fallbacks.

    Raises:
        NotFoundError: If there is no such provider.
    """

    def work() -> tuple[None, bool]:
        provider = _find(session, Provider, provider_id, lock=True)
        models = sorted(model.name for model in provider.models)
        _audit(session, actor, "provider.delete", provider, name=provider.name, models=models)
        session.delete(provider)
        session.flush()
        return None, True

    _change(session, redis, work)


def upstream_of(provider: Provider, settings: Settings) -> Upstream:
    """Return how to reach a stored provider, its key opened.

    Raises:
        ConflictError: If its key cannot be decrypted with PROVIDER_KEY_SECRETS.
    """
    key = None
    if provider.api_key_encrypted is not None:
        try:
            key = SecretBox(settings.provider_key_secrets).open(provider.api_key_encrypted)
        except SecretBoxError:
            raise ConflictError(_UNREADABLE_KEY, field="api_key") from None
    return Upstream(
        base_url=provider.base_url,
        api_key=key,
        timeout=provider.timeout_seconds,
        headers=dict(provider.extra_headers or {}),
    )


def discover_models(session: Session, provider_id: int, settings: Settings) -> list[dict[str, Any]]:
    """List the models a provider offers (its ``GET /models``), marking those already added.

    Args:
        session: Database session.
        provider_id: The stored provider.
        settings: The process settings (to open the key).

    Returns:
        ``[{"id": upstream id, "known": bool}]`` in the provider's order; ``known``: a stored
        model of this provider has that upstream id.

    Raises:
        NotFoundError: If there is no such provider.
        ConflictError: If its key cannot be decrypted.
        UpstreamError: If the provider cannot be reached or answers something else.
    """
    provider = get_provider(session, provider_id)
    upstream = upstream_of(provider, settings)
    known = {model.upstream_id for model in provider.models}
    try:
        ids = provider_requests.list_models(upstream)
    except provider_requests.UPSTREAM_ERRORS as exc:
        reason = provider_requests.failure_reason(exc)
        raise UpstreamError(f"the provider's model list could not be read ({reason})") from None
    return [{"id": model_id, "known": model_id in known} for model_id in ids]


# --- models -------------------------------------------------------------------------------------


def list_models(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Return every model as JSON: the managed ones first, then the stored ones by name."""
    catalogue = load_catalogue(session, settings, SecretBox(settings.provider_key_secrets))
    managed = [model for model in catalogue.models.values() if model.managed]
    stored = session.scalars(select(ChatModel).order_by(ChatModel.name))
    return [*map(_managed_model_to_dict, managed), *map(model_to_dict, stored)]


def get_model(session: Session, model_id: int) -> ChatModel:
    """Return a stored model.

    Raises:
        NotFoundError: If there is none with this id.
    """
    return _find(session, ChatModel, model_id)


def _model_name(value: Any, settings: Settings) -> str:
    name = fields.model_name(value)
    if name in managed_names(settings)[1]:
        raise ConflictError(f"name {name!r} is a managed model's (from the settings)", field="name")
    return name


def _provider_of_model(session: Session, value: Any, settings: Settings) -> Provider:
    name = fields.text(value, "provider", min_length=1, max_length=fields.PROVIDER_NAME_MAX_LENGTH)
    provider = provider_named(session, name)
    if provider is not None:
        return provider
    if name in managed_names(settings)[0]:
        raise ValidationError(
            f"provider {name!r} is managed (from the settings): add models to a stored provider",
            field="provider",
        )
    raise ValidationError(f"provider: there is no provider named {name!r}", field="provider")


def _fallback(session: Session, model: ChatModel, value: Any) -> ChatModel | None:
    if value is None:
        return None
    name = fields.text(value, "fallback", min_length=1, max_length=fields.MODEL_NAME_MAX_LENGTH)
    target = model_named(session, name)
    if target is None:
        raise ValidationError(
            f"fallback: there is no stored model named {name!r}", field="fallback"
        )
    if target is model:
        raise ValidationError("fallback: a model cannot fall back to itself", field="fallback")
    # Follow the chain from the new fallback: reaching this model again would close a cycle.
    links: dict[int, int | None] = {
        row.id: row.fallback_model_id
        for row in session.execute(
            select(ChatModel.id, ChatModel.fallback_model_id).where(
                ChatModel.fallback_model_id.is_not(None)
            )
        )
    }
    current: int | None = target.id
    # Every link at most once: a chain longer than that already loops (never stored here).
    for _ in range(len(links) + 2):
        if current is None:
            return target
        if current == model.id:
            raise ValidationError(
                f"fallback: {name!r} falls back to this model (a cycle)", field="fallback"
            )
        current = links.get(current)
    raise ValidationError(f"fallback: the chain of {name!r} has a cycle", field="fallback")


def _apply_model(
    session: Session, model: ChatModel, changes: Mapping[str, Any], settings: Settings
) -> list[str]:
    """Check and apply model fields; return the names of those that changed."""
    fields.unknown_fields(changes, MODEL_FIELDS)
    changed: list[str] = []

    def assign(name: str, attribute: str, value: Any) -> None:
        if getattr(model, attribute) != value:
            setattr(model, attribute, value)
            changed.append(name)

    if "provider" in changes:
        provider = _provider_of_model(session, changes["provider"], settings)
        if model.provider is not provider:
            model.provider = provider
            changed.append("provider")
    if "name" in changes:
        name = _model_name(changes["name"], settings)
        if name != model.name and model_named(session, name) is not None:
            raise ConflictError(f"a model named {name!r} exists", field="name")
        assign("name", "name", name)
    if "upstream_id" in changes:
        upstream_id = fields.text(
            changes["upstream_id"],
            "upstream_id",
            min_length=1,
            max_length=fields.UPSTREAM_ID_MAX_LENGTH,
        )
        assign("upstream_id", "upstream_id", upstream_id)
    if "display_name" in changes:
        display = fields.optional_text(
            changes["display_name"], "display_name", max_length=fields.DISPLAY_NAME_MAX_LENGTH
        )
        assign("display_name", "display_name", display)
    if "description" in changes:
        description = fields.optional_text(
            changes["description"], "description", max_length=fields.DESCRIPTION_MAX_LENGTH
        )
        assign("description", "description", description)
    for name in ("context_window", "max_output_tokens"):
        if name in changes:
            assign(name, name, fields.optional_count(changes[name], name))
    if "default_temperature" in changes:
        temperature = fields.temperature(changes["default_temperature"])
        assign("default_temperature", "default_temperature", temperature)
    if "enabled" in changes:
        assign("enabled", "enabled", fields.flag(changes["enabled"], "enabled"))
    if "allowed_roles" in changes:
        roles = fields.roles(changes["allowed_roles"])
        if roles != _roles_in_order(model.allowed_roles or ()):
            model.allowed_roles = roles
            changed.append("allowed_roles")
    for name in ("price_input_per_mtok", "price_output_per_mtok"):
        if name in changes:
            assign(name, name, fields.price(changes[name], name))
    if "fallback" in changes:
        fallback = _fallback(session, model, changes["fallback"])
        if model.fallback is not fallback:
            model.fallback = fallback
            changed.append("fallback")
    if "is_default" in changes:
        assign("is_default", "is_default", fields.flag(changes["is_default"], "is_default"))
    # A display name defaults to the name (and follows it while it is not set apart).
    if not model.display_name:
        model.display_name = model.name
    return changed


def _clear_other_defaults(session: Session, model: ChatModel) -> None:
    # Lock the current default first: two admins making two models the default at once queue
    # up here, and the second one's UPDATE sees (and clears) the first one's.
    session.scalars(
        select(ChatModel.id).where(ChatModel.is_default.is_(True)).with_for_update()
    ).all()
    query = update(ChatModel).where(ChatModel.is_default.is_(True))
    if model.id is not None:
        query = query.where(ChatModel.id != model.id)
    session.execute(query.values(is_default=False).execution_options(synchronize_session=False))


def create_model_in(
    session: Session, values: Mapping[str, Any], *, actor: Actor | None, settings: Settings
) -> ChatModel:
    """Add a model to the session and audit it, without committing (see `create_model`)."""
    fields.unknown_fields(values, MODEL_FIELDS)
    for required in ("provider", "name", "upstream_id"):
        if values.get(required) is None:
            raise ValidationError(f"{required} is required", field=required)
    name = _model_name(values["name"], settings)
    if model_named(session, name) is not None:
        raise ConflictError(f"a model named {name!r} exists", field="name")
    model = ChatModel(
        name=name,
        upstream_id="",
        display_name="",
        description="",
        enabled=True,
        allowed_roles=list(USER_ROLES),
        is_default=False,
    )
    # The fallback is checked once the model is in the session: a chain can lead back to it
    # only once it has an id.
    first = {k: v for k, v in values.items() if k not in ("name", "fallback", "is_default")}
    _apply_model(session, model, first, settings)
    session.add(model)
    session.flush()
    later = {k: v for k, v in values.items() if k in ("fallback", "is_default")}
    if later.get("is_default"):
        _clear_other_defaults(session, model)
    _apply_model(session, model, later, settings)
    session.flush()
    _audit(
        session,
        actor,
        "model.create",
        model,
        name=model.name,
        provider=model.provider.name,
        upstream_id=model.upstream_id,
        fields=sorted(k for k, v in values.items() if v is not None),
    )
    return model


def create_model(
    session: Session,
    values: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis,
) -> ChatModel:
    """Create a model on a stored provider.

    Args:
        session: Database session; committed.
        values: ``provider`` (a stored provider's name), ``name`` and ``upstream_id``
            (required), and any other field of a model.
        actor: The admin, for the audit log; None for the playbook.
        settings: The process settings (reserved names).
        redis: The app's Redis, to announce the change.

    Returns:
        The new model.

    Raises:
        ValidationError: Naming the field at fault (``fallback`` for a cycle).
        ConflictError: A taken or managed name.
    """
    return _change(
        session,
        redis,
        lambda: (create_model_in(session, values, actor=actor, settings=settings), True),
    )


def update_model_in(
    session: Session,
    model: ChatModel,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
) -> list[str]:
    """Change a model in the session and audit it, without committing; return what changed."""
    if changes.get("is_default") is True and not model.is_default:
        _clear_other_defaults(session, model)
    changed = _apply_model(session, model, changes, settings)
    if changed:
        session.flush()
        _audit(session, actor, "model.update", model, name=model.name, changed=changed)
    return changed


def update_model(
    session: Session,
    model_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis,
) -> ChatModel:
    """Change a stored model's fields (those in ``changes``; null clears an optional one).

    Raises:
        NotFoundError: If there is no such model.
        ValidationError: Naming the field at fault.
        ConflictError: A taken or managed name.
    """

    def work() -> tuple[ChatModel, bool]:
        model = _find(session, ChatModel, model_id, lock=True)
        changed = update_model_in(session, model, changes, actor=actor, settings=settings)
        return model, bool(changed)

    return _change(session, redis, work)


def delete_model(session: Session, model_id: int, *, actor: Actor | None, redis: Redis) -> None:
    """Delete a stored model; models falling back to it lose their fallback.

    Conversations that chose it (by name) answer with the default model from then on.

    Raises:
        NotFoundError: If there is no such model.
    """

    def work() -> tuple[None, bool]:
        model = _find(session, ChatModel, model_id, lock=True)
        _audit(session, actor, "model.delete", model, name=model.name)
        session.delete(model)
        session.flush()
        return None, True

    _change(session, redis, work)


def probe_model(session: Session, model_id: int, settings: Settings) -> dict[str, Any]:
    """Send a stored model one short, non-streamed request and report how it went.

    Args:
        session: Database session.
        model_id: The model.
        settings: The process settings (to open the provider's key).

    Returns:
        ``{"ok", "latency_ms", "reply", "error"}`` (see
        :func:`webapp.services.provider_requests.chat_once`).

    Raises:
        NotFoundError: If there is no such model.
        ConflictError: If the provider's key cannot be decrypted.
    """
    model = get_model(session, model_id)
    return provider_requests.chat_once(upstream_of(model.provider, settings), model.upstream_id)
