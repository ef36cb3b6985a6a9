"""The model catalogue's admin side: providers and models, created, changed and checked.

Plain Python: the caller passes the session, the settings (managed names, the key-encryption
secrets) and the Redis client (the catalogue version every worker watches). Every change is
checked here, whoever makes it (an admin through the API, the playbook through ``chatbot
catalogue seed``), recorded in the audit log in its transaction, and announced after COMMIT
with :func:`webapp.llm.catalogue.bump_catalogue_version`, so that every worker of every host
uses it from its next request.

Provider API keys are encrypted with :mod:`webapp.secretbox` before they reach the session,
and leave this module only decrypted for a request to their provider: never in a response
(``{"set", "last4"}``), an audit event (only the names of the fields changed) or a log line.
Upstream failures are reported by exception class name or HTTP status, never by message (a
provider's error may quote part of the key).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import httpx
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp import secretbox
from webapp.errors import ConflictError, NotFoundError, UpstreamError, ValidationError
from webapp.llm.catalogue import ModelEntry, ProviderEntry, bump_catalogue_version, managed_entries
from webapp.models import USER_ROLES, ChatModel, Provider, isoformat_utc
from webapp.services import audit
from webapp.services.audit import Actor
from webapp.settings import Settings
from webapp.validation import check_text
from webapp.webhooks.addresses import RefusedAddressError, check_url

__all__ = [
    "API_KEY_MAX_LENGTH",
    "BASE_URL_MAX_LENGTH",
    "DESCRIPTION_MAX_LENGTH",
    "DISPLAY_NAME_MAX_LENGTH",
    "HEADERS_MAX",
    "HEADER_VALUE_MAX_LENGTH",
    "MODEL_NAME_MAX_LENGTH",
    "MODEL_NAME_PATTERN",
    "PLAYBOOK",
    "PROVIDER_NAME_MAX_LENGTH",
    "PROVIDER_NAME_PATTERN",
    "TIMEOUT_MAX_SECONDS",
    "TOKENS_MAX",
    "UPSTREAM_ID_MAX_LENGTH",
    "KeyEncryptionUnavailableError",
    "create_model",
    "create_provider",
    "delete_model",
    "delete_provider",
    "discover_models",
    "format_decimal",
    "get_model",
    "get_provider",
    "list_models",
    "list_providers",
    "model_to_dict",
    "provider_to_dict",
    "probe_model",
    "update_model",
    "update_provider",
]

logger = logging.getLogger(__name__)

PROVIDER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
PROVIDER_NAME_MAX_LENGTH = 64
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
MODEL_NAME_MAX_LENGTH = 100
UPSTREAM_ID_MAX_LENGTH = 200
DISPLAY_NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 1000
BASE_URL_MAX_LENGTH = 2048
API_KEY_MAX_LENGTH = 1000
TIMEOUT_MAX_SECONDS = 600.0
DEFAULT_TIMEOUT_SECONDS = 60.0
HEADERS_MAX = 20
HEADER_NAME_MAX_LENGTH = 100
HEADER_VALUE_MAX_LENGTH = 1000
TOKENS_MAX = 2**31 - 1
PRICE_MAX = Decimal("999999.999999")
PLAYBOOK = "playbook"
"""The actor recorded for changes of ``chatbot catalogue seed`` (run by the playbook)."""
MASK = "***"
TEST_MAX_TOKENS = 16
TEST_PROMPT = "Reply with one short sentence: are you there?"
REPLY_EXCERPT_CHARS = 200

_PROVIDER_NAME = re.compile(PROVIDER_NAME_PATTERN.strip("^$"))
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN.strip("^$"))
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the client sets itself: the key goes in Authorization, the rest is HTTP's own.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})
# A key is sent in a header: printable ASCII, no spaces.
_API_KEY = re.compile(r"[\x21-\x7e]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
_PROVIDER_FIELDS = ("name", "base_url", "api_key", "timeout_seconds", "extra_headers")
_MODEL_FIELDS = (
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
_NO_KEY_ENCRYPTION = (
    "Provider API keys cannot be stored: PROVIDER_KEY_SECRETS is not set on the server."
)

T = TypeVar("T")


class KeyEncryptionUnavailableError(ConflictError):
    """Raised when a provider key is to be stored but no key-encryption secret is configured."""

    code = "key_encryption_unavailable"


# --- serialisation ------------------------------------------------------------------------------


def format_decimal(value: Decimal | None) -> str | None:
    """Return a decimal as exact text without trailing zeros (``0.15``, ``3``), or None."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _key_state(last4: str | None, stored: bool) -> dict[str, Any]:
    return {"set": stored, "last4": last4 if stored else None}


def provider_to_dict(provider: Provider) -> dict[str, Any]:
    """Return the JSON representation of a stored provider (the key: only set and last 4).

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
        "api_key": _key_state(provider.api_key_last4, provider.api_key_encrypted is not None),
        "managed": False,
        "created_at": isoformat_utc(provider.created_at),
        "updated_at": isoformat_utc(provider.updated_at),
    }


def _managed_provider_to_dict(entry: ProviderEntry) -> dict[str, Any]:
    key = entry.api_key or ""
    return {
        "id": None,
        "name": entry.name,
        "kind": entry.kind,
        "base_url": entry.base_url,
        "timeout_seconds": entry.timeout,
        "extra_headers": dict.fromkeys(entry.extra_headers or {}, MASK),
        "api_key": _key_state(key[-4:] if len(key) >= 8 else None, bool(key)),
        "managed": True,
        "created_at": None,
        "updated_at": None,
    }


def model_to_dict(model: ChatModel, *, provider: str, fallback: str | None) -> dict[str, Any]:
    """Return the JSON representation of a stored model.

    Args:
        model: The model.
        provider: Its provider's name.
        fallback: The name of its fallback model, or None.

    Returns:
        The model's fields (see the OpenAPI document), prices as decimal strings.
    """
    return {
        "id": model.id,
        "name": model.name,
        "provider": provider,
        "upstream_id": model.upstream_id,
        "display_name": model.display_name or model.name,
        "description": model.description or "",
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "default_temperature": model.default_temperature,
        "enabled": model.enabled,
        "allowed_roles": [role for role in USER_ROLES if role in model.allowed_roles],
        "fallback": fallback,
        "price_input_per_mtok": format_decimal(model.price_input_per_mtok),
        "price_output_per_mtok": format_decimal(model.price_output_per_mtok),
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
        "display_name": entry.display_name or entry.name,
        "description": entry.description or "",
        "context_window": entry.context_window,
        "max_output_tokens": entry.max_output_tokens,
        "default_temperature": entry.default_temperature,
        "enabled": entry.enabled,
        "allowed_roles": [role for role in USER_ROLES if role in entry.allowed_roles],
        "fallback": entry.fallback,
        "price_input_per_mtok": format_decimal(entry.price_input),
        "price_output_per_mtok": format_decimal(entry.price_output),
        "is_default": entry.is_default,
        "managed": True,
        "created_at": None,
        "updated_at": None,
    }


# --- checks -------------------------------------------------------------------------------------


def _unknown_fields(changes: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ValidationError(f"Unknown field: {unknown[0]}", field=unknown[0])


def _text(value: Any, name: str, *, min_length: int, max_length: int) -> str:
    if not isinstance(value, str):
        if value is None and min_length:
            raise ValidationError(f"{name} is required", field=name)
        raise ValidationError(f"{name} must be a string", field=name)
    check_text(value, name, min_length=min_length, max_length=max_length)
    return value.strip()


def _name(value: Any, field: str, pattern: re.Pattern[str], max_length: int, rule: str) -> str:
    name = _text(value, field, min_length=1, max_length=max_length)
    if not pattern.fullmatch(name):
        raise ValidationError(f"{field} must be {rule}", field=field)
    return name


def _provider_name(value: Any, settings: Settings) -> str:
    name = _name(
        value,
        "name",
        _PROVIDER_NAME,
        PROVIDER_NAME_MAX_LENGTH,
        "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
    )
    if name in managed_provider_names(settings):
        raise ConflictError(
            f"name {name!r} is a managed provider's (from the settings)", field="name"
        )
    return name


def _model_name(value: Any, settings: Settings) -> str:
    name = _name(
        value,
        "name",
        _MODEL_NAME,
        MODEL_NAME_MAX_LENGTH,
        "letters, digits, '.', '_', ':', '/' and '-', starting with a letter or digit",
    )
    if name in managed_model_names(settings):
        raise ConflictError(f"name {name!r} is a managed model's (from the settings)", field="name")
    return name


def _base_url(value: Any) -> str:
    url = _text(value, "base_url", min_length=1, max_length=BASE_URL_MAX_LENGTH)
    try:
        check_url(url)
    except RefusedAddressError as exc:
        # The shared check speaks of "url"; this field is base_url.
        message = str(exc).removeprefix("url ")
        raise ValidationError(f"base_url {message}", field="base_url") from None
    return url.rstrip("/")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a number", field=name)
    return float(value)


def _timeout(value: Any) -> float:
    seconds = _number(value, "timeout_seconds")
    if not 0 < seconds <= TIMEOUT_MAX_SECONDS:
        raise ValidationError(
            f"timeout_seconds must be more than 0 and at most {TIMEOUT_MAX_SECONDS:g}",
            field="timeout_seconds",
        )
    return seconds


def _headers(value: Any) -> dict[str, str]:
    field = "extra_headers"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be an object of header names to values", field=field)
    if len(value) > HEADERS_MAX:
        raise ValidationError(f"{field} must have at most {HEADERS_MAX} headers", field=field)
    headers: dict[str, str] = {}
    for name, header in value.items():
        if (
            not isinstance(name, str)
            or len(name) > HEADER_NAME_MAX_LENGTH
            or not _HEADER_NAME.fullmatch(name)
        ):
            raise ValidationError(
                f"{field}: {str(name)[:HEADER_NAME_MAX_LENGTH]!r} is not a header name (HTTP"
                f" token characters, at most {HEADER_NAME_MAX_LENGTH})",
                field=field,
            )
        if name.lower() in _RESERVED_HEADERS:
            raise ValidationError(f"{field}: {name} is set by the server", field=field)
        if name.lower() in (seen.lower() for seen in headers):
            raise ValidationError(f"{field}: {name} is given twice", field=field)
        if (
            not isinstance(header, str)
            or len(header) > HEADER_VALUE_MAX_LENGTH
            or not _HEADER_VALUE.fullmatch(header)
        ):
            raise ValidationError(
                f"{field}: the value of {name} must be printable ASCII text of at most"
                f" {HEADER_VALUE_MAX_LENGTH} characters",
                field=field,
            )
        headers[name] = header
    return headers


def _api_key(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError("api_key must be a string", field="api_key")
    if len(value) > API_KEY_MAX_LENGTH:
        raise ValidationError(
            f"api_key must be at most {API_KEY_MAX_LENGTH} characters", field="api_key"
        )
    if not _API_KEY.fullmatch(value):
        raise ValidationError("api_key must be printable ASCII without spaces", field="api_key")
    return value


def _optional_count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TOKENS_MAX:
        raise ValidationError(f"{name} must be a whole number from 1 to {TOKENS_MAX}", field=name)
    return value


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    temperature = _number(value, "default_temperature")
    if not 0 <= temperature <= 2:
        raise ValidationError(
            "default_temperature must be from 0 to 2", field="default_temperature"
        )
    return temperature


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
    return value


def _roles(value: Any) -> list[str]:
    field = "allowed_roles"
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f"{field} must be a non-empty list of: {', '.join(USER_ROLES)}", field=field
        )
    for role in value:
        if not isinstance(role, str) or role not in USER_ROLES:
            raise ValidationError(
                f"{field}: unknown role {role!r}; choose from {', '.join(USER_ROLES)}",
                field=field,
            )
    return [role for role in USER_ROLES if role in value]


def _price(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{name} must be a decimal number or null", field=name)
    try:
        price = Decimal(str(value).strip()) if len(str(value)) <= 32 else Decimal("nan")
    except InvalidOperation:
        price = Decimal("nan")
    if not price.is_finite() or not 0 <= price <= PRICE_MAX:
        raise ValidationError(f"{name} must be a number from 0 to {PRICE_MAX}", field=name)
    if price != price.quantize(Decimal("0.000001")):
        raise ValidationError(f"{name} must have at most 6 decimal places", field=name)
    return price


def managed_provider_names(settings: Settings) -> frozenset[str]:
    """Return the names of the providers that come from the settings (reserved)."""
    providers, _ = managed_entries(settings)
    return frozenset({"offline", "environment", *(p.name for p in providers)})


def managed_model_names(settings: Settings) -> frozenset[str]:
    """Return the model names that come from the settings (reserved): offline, LLM_MODEL..."""
    _, models = managed_entries(settings)
    configured = {settings.llm_model, settings.llm_fallback_model} - {""}
    return frozenset({"offline", *configured, *(m.name for m in models)})


# --- transactions -------------------------------------------------------------------------------


def _audit(
    session: Session,
    actor: Actor | None,
    action: str,
    target_type: str,
    target_id: int,
    **details: Any,
) -> None:
    if actor is None:
        details = {"actor": PLAYBOOK, **details}
    audit.record(
        session,
        action=action,
        actor=None if actor is None else actor.user,
        target_type=target_type,
        target_id=target_id,
        source_ip=None if actor is None else actor.source_ip,
        details=details,
    )


def commit_and_announce(session: Session, redis: Redis | None) -> None:
    """Commit the catalogue change, then tell every worker (a new catalogue version).

    A name taken meanwhile by a concurrent change is a 409 (the unique index said so).

    Args:
        session: The session holding the change.
        redis: The app's Redis; None only where no worker can be running (tests of the CLI).

    Raises:
        ConflictError: If a unique index refused the change.
    """
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError("the name is taken (a concurrent change)", field="name") from None
    if redis is None:
        return
    try:
        bump_catalogue_version(redis)
    except RedisError as exc:
        # Committed: the workers see it when they next read the version; say so loudly.
        logger.error(  # noqa: TRY400 - the class name is the message; no traceback needed
            "catalogue change committed, but the version bump failed (%s): workers keep the"
            " previous catalogue until the next change",
            type(exc).__name__,
        )


def _atomic(session: Session, work: Callable[[], T]) -> T:
    # A refused change leaves nothing behind in the session (the caller's next use is clean).
    try:
        return work()
    except Exception:
        session.rollback()
        raise


# --- providers ----------------------------------------------------------------------------------


def list_providers(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Return every provider as JSON: the managed ones first, then the stored ones by name.

    Args:
        session: Database session.
        settings: The process settings (the managed providers).

    Returns:
        The providers' representations.
    """
    managed, _ = managed_entries(settings)
    stored = session.scalars(select(Provider).order_by(Provider.name))
    return [*map(_managed_provider_to_dict, managed), *map(provider_to_dict, stored)]


def get_provider(session: Session, provider_id: int) -> Provider:
    """Return a stored provider.

    Raises:
        NotFoundError: If there is none with this id.
    """
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFoundError("provider not found")
    return provider


def _provider_named(session: Session, name: str) -> Provider | None:
    return session.scalars(select(Provider).where(Provider.name == name)).one_or_none()


def _set_key(provider: Provider, key: str | None, settings: Settings) -> None:
    if key is None:
        provider.api_key_encrypted = None
        provider.api_key_last4 = None
        return
    if not settings.provider_key_secrets:
        raise KeyEncryptionUnavailableError(_NO_KEY_ENCRYPTION, field="api_key")
    provider.api_key_encrypted = secretbox.encrypt(key, settings.provider_key_secrets)
    # The last 4 characters identify a key; a short key would be half given away.
    provider.api_key_last4 = key[-4:] if len(key) >= 8 else None


def _apply_provider(
    session: Session, provider: Provider, changes: Mapping[str, Any], settings: Settings
) -> list[str]:
    """Check and apply provider fields; return the names of those that changed."""
    _unknown_fields(changes, _PROVIDER_FIELDS)
    changed: list[str] = []
    if "name" in changes:
        name = _provider_name(changes["name"], settings)
        if name != provider.name:
            if _provider_named(session, name) is not None:
                raise ConflictError(f"a provider named {name!r} exists", field="name")
            provider.name = name
            changed.append("name")
    if "base_url" in changes:
        url = _base_url(changes["base_url"])
        if url != provider.base_url:
            provider.base_url = url
            changed.append("base_url")
    if "timeout_seconds" in changes:
        value = changes["timeout_seconds"]
        seconds = DEFAULT_TIMEOUT_SECONDS if value is None else _timeout(value)
        if seconds != provider.timeout_seconds:
            provider.timeout_seconds = seconds
            changed.append("timeout_seconds")
    if "extra_headers" in changes:
        headers = _headers(changes["extra_headers"])
        if headers != (provider.extra_headers or {}):
            provider.extra_headers = headers
            changed.append("extra_headers")
    if "api_key" in changes:
        key = _api_key(changes["api_key"])
        if key != _stored_key(provider, settings):
            _set_key(provider, key, settings)
            changed.append("api_key")
    return changed


def _stored_key(provider: Provider, settings: Settings) -> str | None:
    if provider.api_key_encrypted is None:
        return None
    try:
        return secretbox.decrypt(provider.api_key_encrypted, settings.provider_key_secrets)
    except secretbox.KeyDecryptionError:
        return None  # unreadable (its secret was retired): any new key replaces it


def create_provider_in(
    session: Session, fields: Mapping[str, Any], *, actor: Actor | None, settings: Settings
) -> Provider:
    """Add a provider to the session and audit it, without committing (see `create_provider`)."""
    for required in ("name", "base_url"):
        if fields.get(required) is None:
            raise ValidationError(f"{required} is required", field=required)
    name = _provider_name(fields["name"], settings)
    if _provider_named(session, name) is not None:
        raise ConflictError(f"a provider named {name!r} exists", field="name")
    provider = Provider(
        name=name,
        kind="openai",
        base_url="",
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
        extra_headers={},
        api_key_encrypted=None,
        api_key_last4=None,
    )
    _apply_provider(session, provider, {k: v for k, v in fields.items() if k != "name"}, settings)
    session.add(provider)
    session.flush()
    _audit(
        session,
        actor,
        "provider.create",
        "provider",
        provider.id,
        name=provider.name,
        base_url=provider.base_url,
        fields=sorted(k for k in fields if fields[k] is not None),
    )
    return provider


def create_provider(
    session: Session,
    fields: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis | None,
) -> Provider:
    """Create a provider (OpenAI-compatible).

    Args:
        session: Database session; committed.
        fields: ``name`` and ``base_url`` (required), ``api_key``, ``timeout_seconds``,
            ``extra_headers``.
        actor: The admin, for the audit log; None for the playbook.
        settings: The process settings (reserved names, PROVIDER_KEY_SECRETS).
        redis: The app's Redis, to announce the change.

    Returns:
        The new provider.

    Raises:
        ValidationError: Naming the field at fault.
        ConflictError: A taken or managed name; ``key_encryption_unavailable`` for a key
            without PROVIDER_KEY_SECRETS.
    """
    provider = _atomic(
        session, lambda: create_provider_in(session, fields, actor=actor, settings=settings)
    )
    commit_and_announce(session, redis)
    return provider


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
        _audit(
            session, actor, "provider.update", "provider", provider.id, name=provider.name,
            changed=changed,
        )  # fmt: skip
    return changed


def update_provider(
    session: Session,
    provider_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis | None,
) -> Provider:
    """Change a stored provider's fields (those in ``changes``).

    Args:
        session: Database session; committed.
        provider_id: The provider.
        changes: Fields to change (``api_key``: ``""`` or None removes it).
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

    def work() -> tuple[Provider, list[str]]:
        provider = _lock(session, Provider, provider_id, "provider")
        return provider, update_provider_in(
            session, provider, changes, actor=actor, settings=settings
        )

    provider, changed = _atomic(session, work)
    if changed:
        commit_and_announce(session, redis)
    else:
        session.commit()
    return provider


def delete_provider(
    session: Session, provider_id: int, *, actor: Actor | None, redis: Redis | None
) -> None:
    """Delete a stored provider with its models (models elsewhere lose it as their fallback).

    Raises:
        NotFoundError: If there is no such provider.
    """

    def work() -> None:
        provider = _lock(session, Provider, provider_id, "provider")
        names = list(
            session.scalars(
                select(ChatModel.name).where(ChatModel.provider_id == provider.id).order_by(
                    ChatModel.name
                )
            )
        )
        _audit(
            session, actor, "provider.delete", "provider", provider.id, name=provider.name,
            models=names,
        )  # fmt: skip
        session.delete(provider)
        session.flush()

    _atomic(session, work)
    commit_and_announce(session, redis)


def _lock(session: Session, entity: type[T], entity_id: int, what: str) -> T:
    found = session.get(entity, entity_id, with_for_update=True)
    if found is None:
        session.rollback()
        raise NotFoundError(f"{what} not found")
    return found


# --- requests to a provider ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Upstream:
    base_url: str
    api_key: str | None
    timeout: float
    headers: Mapping[str, str]

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _upstream(provider: Provider, settings: Settings) -> _Upstream:
    key = None
    if provider.api_key_encrypted is not None:
        try:
            key = secretbox.decrypt(provider.api_key_encrypted, settings.provider_key_secrets)
        except secretbox.KeyDecryptionError:
            raise ConflictError(
                "the provider's API key cannot be decrypted with PROVIDER_KEY_SECRETS (its"
                " secret was retired?): set the key again",
                field="api_key",
            ) from None
    return _Upstream(
        base_url=provider.base_url,
        api_key=key,
        timeout=provider.timeout_seconds,
        headers=provider.extra_headers or {},
    )


def list_upstream_models(
    base_url: str, headers: Mapping[str, str], timeout: float
) -> list[str]:
    """Return the model ids a provider's ``GET {base_url}/models`` lists.

    Args:
        base_url: The provider's base URL.
        headers: The request's headers (Authorization with the key, the extra headers).
        timeout: Seconds the request may take.

    Returns:
        The ids, in the provider's order.

    Raises:
        httpx.HTTPError: If the provider cannot be reached or answers an error.
        ValueError: If the answer is not an OpenAI model list.
    """
    response = httpx.get(
        f"{base_url.rstrip('/')}/models",
        headers=dict(headers),
        timeout=timeout,
        follow_redirects=False,
    )
    response.raise_for_status()
    data = response.json().get("data")
    if not isinstance(data, list):
        raise ValueError("not a model list")
    return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]


def upstream_failure(exc: BaseException) -> str:
    """Return what to say of a failed upstream request: an HTTP status or a class name only."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def discover_models(session: Session, provider_id: int, settings: Settings) -> list[dict[str, Any]]:
    """List the models a provider offers, each marked ``known`` if a stored model uses it.

    Args:
        session: Database session.
        provider_id: The stored provider.
        settings: The process settings (to decrypt the key).

    Returns:
        ``[{"id": upstream id, "known": bool}]`` in the provider's order.

    Raises:
        NotFoundError: If there is no such provider.
        UpstreamError: If the provider cannot be reached or answers something else.
    """
    provider = get_provider(session, provider_id)
    upstream = _upstream(provider, settings)
    known = set(
        session.scalars(select(ChatModel.upstream_id).where(ChatModel.provider_id == provider.id))
    )
    try:
        ids = list_upstream_models(upstream.base_url, upstream.request_headers(), upstream.timeout)
    except (httpx.HTTPError, ValueError, KeyError, AttributeError) as exc:
        raise UpstreamError(
            f"the provider's model list could not be read ({upstream_failure(exc)})"
        ) from None
    return [{"id": model_id, "known": model_id in known} for model_id in ids]


# --- models -------------------------------------------------------------------------------------


def _names_by_id(session: Session) -> tuple[dict[int, str], dict[int, str]]:
    providers = dict(session.execute(select(Provider.id, Provider.name)).tuples())
    models = dict(session.execute(select(ChatModel.id, ChatModel.name)).tuples())
    return providers, models


def list_models(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Return every model as JSON: the managed ones first, then the stored ones by name."""
    _, managed = managed_entries(settings)
    providers, names = _names_by_id(session)
    stored = session.scalars(select(ChatModel).order_by(ChatModel.name))
    return [
        *map(_managed_model_to_dict, managed),
        *(
            model_to_dict(
                m,
                provider=providers[m.provider_id],
                fallback=None if m.fallback_model_id is None else names.get(m.fallback_model_id),
            )
            for m in stored
        ),
    ]


def get_model(session: Session, model_id: int) -> ChatModel:
    """Return a stored model.

    Raises:
        NotFoundError: If there is none with this id.
    """
    model = session.get(ChatModel, model_id)
    if model is None:
        raise NotFoundError("model not found")
    return model


def stored_model_to_dict(session: Session, model: ChatModel) -> dict[str, Any]:
    """Return a stored model's JSON, looking up its provider's and fallback's names."""
    provider = session.get(Provider, model.provider_id)
    fallback = (
        None if model.fallback_model_id is None else session.get(ChatModel, model.fallback_model_id)
    )
    return model_to_dict(
        model,
        provider=provider.name if provider is not None else "",
        fallback=None if fallback is None else fallback.name,
    )


def _model_named(session: Session, name: str) -> ChatModel | None:
    return session.scalars(select(ChatModel).where(ChatModel.name == name)).one_or_none()


def _provider_for_model(session: Session, value: Any, settings: Settings) -> Provider:
    name = _text(value, "provider", min_length=1, max_length=PROVIDER_NAME_MAX_LENGTH)
    provider = _provider_named(session, name)
    if provider is not None:
        return provider
    if name in managed_provider_names(settings):
        raise ValidationError(
            f"provider {name!r} is managed (from the settings): add models to a stored provider",
            field="provider",
        )
    raise ValidationError(f"provider: there is no provider named {name!r}", field="provider")


def _fallback_id(session: Session, model: ChatModel, value: Any) -> int | None:
    if value is None:
        return None
    name = _text(value, "fallback", min_length=1, max_length=MODEL_NAME_MAX_LENGTH)
    target = _model_named(session, name)
    if target is None:
        raise ValidationError(
            f"fallback: there is no stored model named {name!r}", field="fallback"
        )
    if model.id is not None and target.id == model.id:
        raise ValidationError("fallback: a model cannot fall back to itself", field="fallback")
    # Follow the chain from the new fallback: reaching this model again would be a cycle.
    links = dict(
        session.execute(
            select(ChatModel.id, ChatModel.fallback_model_id).where(
                ChatModel.fallback_model_id.is_not(None)
            )
        ).tuples()
    )
    current: int | None = target.id
    for _ in range(len(links) + 1):
        if current is None:
            return target.id
        if model.id is not None and current == model.id:
            raise ValidationError(
                f"fallback: {name!r} falls back to this model (a cycle)", field="fallback"
            )
        current = links.get(current)
    raise ValidationError(f"fallback: the chain of {name!r} has a cycle", field="fallback")


def _apply_model(
    session: Session, model: ChatModel, changes: Mapping[str, Any], settings: Settings
) -> list[str]:
    """Check and apply model fields; return the names of those that changed."""
    _unknown_fields(changes, _MODEL_FIELDS)
    changed: list[str] = []

    def assign(field: str, attribute: str, value: Any) -> None:
        if getattr(model, attribute) != value:
            setattr(model, attribute, value)
            changed.append(field)

    if "provider" in changes:
        assign("provider", "provider_id", _provider_for_model(session, changes["provider"], settings).id)
    if "name" in changes:
        name = _model_name(changes["name"], settings)
        if name != model.name:
            if _model_named(session, name) is not None:
                raise ConflictError(f"a model named {name!r} exists", field="name")
            assign("name", "name", name)
    if "upstream_id" in changes:
        upstream = _text(
            changes["upstream_id"], "upstream_id", min_length=1, max_length=UPSTREAM_ID_MAX_LENGTH
        )
        assign("upstream_id", "upstream_id", upstream)
    if "display_name" in changes:
        value = changes["display_name"]
        text = "" if value is None else _text(
            value, "display_name", min_length=0, max_length=DISPLAY_NAME_MAX_LENGTH
        )  # fmt: skip
        assign("display_name", "display_name", text)
    if "description" in changes:
        value = changes["description"]
        text = "" if value is None else _text(
            value, "description", min_length=0, max_length=DESCRIPTION_MAX_LENGTH
        )  # fmt: skip
        assign("description", "description", text)
    for field in ("context_window", "max_output_tokens"):
        if field in changes:
            assign(field, field, _optional_count(changes[field], field))
    if "default_temperature" in changes:
        assign("default_temperature", "default_temperature", _temperature(changes["default_temperature"]))
    if "enabled" in changes:
        assign("enabled", "enabled", _flag(changes["enabled"], "enabled"))
    if "allowed_roles" in changes:
        roles = _roles(changes["allowed_roles"])
        if sorted(roles) != sorted(model.allowed_roles or []):
            model.allowed_roles = roles
            changed.append("allowed_roles")
    for field in ("price_input_per_mtok", "price_output_per_mtok"):
        if field in changes:
            assign(field, field, _price(changes[field], field))
    if "fallback" in changes:
        assign("fallback", "fallback_model_id", _fallback_id(session, model, changes["fallback"]))
    if "is_default" in changes:
        assign("is_default", "is_default", _flag(changes["is_default"], "is_default"))
    return changed


def _clear_other_defaults(session: Session, model: ChatModel) -> None:
    # Lock the current default first: two admins making two models the default queue up here,
    # and the second one's UPDATE sees (and clears) the first one's.
    session.scalars(select(ChatModel.id).where(ChatModel.is_default.is_(True)).with_for_update()).all()
    query = update(ChatModel).where(ChatModel.is_default.is_(True))
    if model.id is not None:
        query = query.where(ChatModel.id != model.id)
    session.execute(query.values(is_default=False))


def create_model_in(
    session: Session, fields: Mapping[str, Any], *, actor: Actor | None, settings: Settings
) -> ChatModel:
    """Add a model to the session and audit it, without committing (see `create_model`)."""
    _unknown_fields(fields, _MODEL_FIELDS)
    for required in ("provider", "name", "upstream_id"):
        if fields.get(required) is None:
            raise ValidationError(f"{required} is required", field=required)
    name = _model_name(fields["name"], settings)
    if _model_named(session, name) is not None:
        raise ConflictError(f"a model named {name!r} exists", field="name")
    model = ChatModel(
        name=name,
        provider_id=_provider_for_model(session, fields["provider"], settings).id,
        upstream_id="",
        display_name="",
        description="",
        enabled=True,
        allowed_roles=list(USER_ROLES),
        is_default=False,
    )
    rest = {k: v for k, v in fields.items() if k not in ("name", "provider")}
    _apply_model(session, model, rest, settings)
    if model.is_default:
        _clear_other_defaults(session, model)
    session.add(model)
    session.flush()
    _audit(
        session, actor, "model.create", "model", model.id, name=model.name,
        provider=fields["provider"], upstream_id=model.upstream_id,
        fields=sorted(k for k in fields if fields[k] is not None),
    )  # fmt: skip
    return model


def create_model(
    session: Session,
    fields: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis | None,
) -> ChatModel:
    """Create a model on a stored provider.

    Args:
        session: Database session; committed.
        fields: ``provider`` (a stored provider's name), ``name``, ``upstream_id`` (required),
            and any of the other fields of a model.
        actor: The admin, for the audit log; None for the playbook.
        settings: The process settings (reserved names).
        redis: The app's Redis, to announce the change.

    Returns:
        The new model.

    Raises:
        ValidationError: Naming the field at fault (``fallback`` for a cycle).
        ConflictError: A taken or managed name.
    """
    model = _atomic(session, lambda: create_model_in(session, fields, actor=actor, settings=settings))
    commit_and_announce(session, redis)
    return model


def update_model_in(
    session: Session,
    model: ChatModel,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
) -> list[str]:
    """Change a model in the session and audit it, without committing; return what changed."""
    changed = _apply_model(session, model, changes, settings)
    if "is_default" in changed and model.is_default:
        _clear_other_defaults(session, model)
    if changed:
        session.flush()
        _audit(
            session, actor, "model.update", "model", model.id, name=model.name, changed=changed
        )
    return changed


def update_model(
    session: Session,
    model_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None,
    settings: Settings,
    redis: Redis | None,
) -> ChatModel:
    """Change a stored model's fields (those in ``changes``; null clears an optional one).

    Raises:
        NotFoundError: If there is no such model.
        ValidationError: Naming the field at fault.
        ConflictError: A taken or managed name.
    """

    def work() -> tuple[ChatModel, list[str]]:
        model = _lock(session, ChatModel, model_id, "model")
        return model, update_model_in(session, model, changes, actor=actor, settings=settings)

    model, changed = _atomic(session, work)
    if changed:
        commit_and_announce(session, redis)
    else:
        session.commit()
    return model


def delete_model(
    session: Session, model_id: int, *, actor: Actor | None, redis: Redis | None
) -> None:
    """Delete a stored model (models falling back to it lose their fallback).

    Conversations that chose it by name fall back to the default model.

    Raises:
        NotFoundError: If there is no such model.
    """

    def work() -> None:
        model = _lock(session, ChatModel, model_id, "model")
        _audit(session, actor, "model.delete", "model", model.id, name=model.name)
        session.delete(model)
        session.flush()

    _atomic(session, work)
    commit_and_announce(session, redis)


def probe_model(session: Session, model_id: int, settings: Settings) -> dict[str, Any]:
    """Send a stored model one short, non-streamed request and report how it went.

    Args:
        session: Database session.
        model_id: The model.
        settings: The process settings (to decrypt the provider's key).

    Returns:
        ``{"ok", "latency_ms", "reply" (its first 200 characters), "error"}``; ``error`` is an
        HTTP status or an exception class name (never a message), null when ``ok``.

    Raises:
        NotFoundError: If there is no such model.
    """
    model = get_model(session, model_id)
    upstream = _upstream(get_provider(session, model.provider_id), settings)
    return _chat_once(upstream, model.upstream_id)


def probe_managed_model(entry: ModelEntry) -> dict[str, Any]:
    """Test a managed model like a stored one (the offline model answers locally)."""
    if entry.provider.kind == "offline":
        started = time.perf_counter()
        from webapp.llm.offline import OFFLINE_LABEL  # LangChain only when asked for

        return {
            "ok": True,
            "latency_ms": int((time.perf_counter() - started) * 1000),
            "reply": OFFLINE_LABEL,
            "error": None,
        }
    upstream = _Upstream(
        base_url=entry.provider.base_url,
        api_key=entry.provider.api_key or None,
        timeout=entry.provider.timeout,
        headers=entry.provider.extra_headers or {},
    )
    return _chat_once(upstream, entry.upstream_id)


def _chat_once(upstream: _Upstream, upstream_id: str) -> dict[str, Any]:
    started = time.perf_counter()
    reply, error = "", None
    try:
        response = httpx.post(
            f"{upstream.base_url.rstrip('/')}/chat/completions",
            headers=upstream.request_headers(),
            json={
                "model": upstream_id,
                "messages": [{"role": "user", "content": TEST_PROMPT}],
                "max_tokens": TEST_MAX_TOKENS,
                "stream": False,
            },
            timeout=upstream.timeout,
            follow_redirects=False,
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        reply = str(content or "")[:REPLY_EXCERPT_CHARS]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        error = upstream_failure(exc)
    return {
        "ok": error is None,
        "latency_ms": int((time.perf_counter() - started) * 1000),
        "reply": reply,
        "error": error,
    }


def count_stored(session: Session) -> tuple[int, int]:
    """Return how many providers and models are stored."""
    providers = session.scalar(select(func.count()).select_from(Provider)) or 0
    models = session.scalar(select(func.count()).select_from(ChatModel)) or 0
    return providers, models
