"""The model catalogue: which models exist, who may use them, and what answers for each.

Two kinds of entries make one catalogue:

- **managed** ones, from the settings, always there and read-only: the built-in ``offline``
  model (a provider of its own), and, when OPENAI_API_KEY or OPENAI_BASE_URL is set, the
  ``environment`` provider with the models LLM_MODEL and LLM_FALLBACK_MODEL. Deployments that
  configure their model in the inventory keep working unchanged;
- **stored** ones, in the ``providers`` and ``chat_models`` tables, that admins manage at
  runtime (``webapp.services.catalogue_admin``) or the playbook seeds.

The system default is the enabled stored model marked default, else LLM_MODEL (``offline``
when no provider is configured).

A process keeps one immutable snapshot (`Catalogue`) and checks a version counter in Redis
(`CATALOGUE_VERSION_KEY`) each time it needs one (`CatalogueSource.current`); every change
sets a new random version after its commit (`bump_catalogue_version`), so every worker of every
app host uses the new catalogue from its next request on, without a restart. Random rather
than a counter: a Redis that lost its data and counted again could not hand out a version a
process already holds for an older catalogue.

Nothing here imports Flask.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from webapp.llm.offline import OFFLINE_MODEL_NAME
from webapp.models import USER_ROLES, ChatModel, Provider
from webapp.secretbox import SecretBox, SecretBoxError

__all__ = [
    "CATALOGUE_VERSION_KEY",
    "ENVIRONMENT_PROVIDER",
    "OFFLINE_PROVIDER",
    "Catalogue",
    "CatalogueSettings",
    "CatalogueSource",
    "ModelEntry",
    "ModelUnavailableError",
    "ProviderEntry",
    "bump_catalogue_version",
    "load_catalogue",
    "managed_names",
    "settings_model_name",
]

logger = logging.getLogger(__name__)

CATALOGUE_VERSION_KEY = "catalogue:version"
OFFLINE_PROVIDER = "offline"
ENVIRONMENT_PROVIDER = "environment"
_ALL_ROLES = frozenset(USER_ROLES)


class CatalogueSettings(Protocol):
    """The settings the managed entries come from (a subset of `webapp.settings.Settings`)."""

    @property
    def llm_model(self) -> str: ...

    @property
    def llm_fallback_model(self) -> str: ...

    @property
    def llm_max_tokens(self) -> int: ...

    @property
    def llm_temperature(self) -> float: ...

    @property
    def llm_timeout(self) -> float: ...

    @property
    def openai_api_key(self) -> str: ...

    @property
    def openai_base_url(self) -> str: ...


class ModelUnavailableError(LookupError):
    """Raised when a model is asked for by name that the caller may not use.

    Unknown, disabled, removed and forbidden models are all the same to the caller: it may
    not know of models it cannot use.

    Attributes:
        name: The name asked for.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"The model {name!r} does not exist or you do not have access to it")
        self.name = name


@dataclass(frozen=True)
class ProviderEntry:
    """A provider as the catalogue uses it: where its models answer, with what credentials.

    Attributes:
        name: Unique name.
        kind: ``openai`` (any OpenAI-compatible server) or ``offline`` (the built-in model).
        base_url: The server's API root (``https://api.openai.com/v1``); empty: OpenAI's.
        api_key: The decrypted key ("" for none); never in ``repr``, never serialised.
        timeout: Seconds a request may take.
        extra_headers: Sent with every request (may hold credentials: not in ``repr``).
        managed: From the settings (read-only) rather than stored.
        id: The stored row's id; None for managed ones.
        key_error: Why the stored key could not be decrypted, if it could not.
    """

    name: str
    kind: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    timeout: float = 60.0
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    managed: bool = False
    id: int | None = None
    key_error: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A model users and API clients may choose by name.

    Attributes:
        name: Unique public name (what clients send as ``model``).
        provider: Its provider.
        upstream_id: The model id sent to the provider.
        display_name: Shown in pickers.
        description: Shown in pickers.
        context_window: Tokens the model reads at most, if known.
        max_output_tokens: Tokens of reply asked for at most; None: LLM_MAX_TOKENS.
        default_temperature: None: LLM_TEMPERATURE.
        enabled: Disabled models answer nobody.
        allowed_roles: User roles that may use it.
        fallback: Name of the model that answers when this one fails, if any.
        price_input: Per million input tokens, if priced.
        price_output: Per million output tokens, if priced.
        is_default: The system default.
        managed: From the settings (read-only) rather than stored.
        id: The stored row's id; None for managed ones.
    """

    name: str
    provider: ProviderEntry
    upstream_id: str
    display_name: str
    description: str = ""
    context_window: int | None = None
    max_output_tokens: int | None = None
    default_temperature: float | None = None
    enabled: bool = True
    allowed_roles: frozenset[str] = _ALL_ROLES
    fallback: str | None = None
    price_input: Decimal | None = None
    price_output: Decimal | None = None
    is_default: bool = False
    managed: bool = False
    id: int | None = None

    def usable_by(self, role: str) -> bool:
        """Whether a user of this role may use the model."""
        return self.enabled and role in self.allowed_roles


class Catalogue:
    """An immutable snapshot of the catalogue.

    Attributes:
        version: The version in Redis it was loaded at ("" when none was set).
        providers: Every provider, managed ones first.
        models: Every model by name, managed ones first.
        default_name: The system default model's name.
    """

    def __init__(
        self,
        providers: Iterable[ProviderEntry],
        models: Iterable[ModelEntry],
        default_name: str,
        version: str = "",
    ) -> None:
        self.version = version
        self.providers: tuple[ProviderEntry, ...] = tuple(providers)
        self.models: dict[str, ModelEntry] = {model.name: model for model in models}
        if default_name not in self.models:
            msg = f"the default model {default_name!r} is not in the catalogue"
            raise ValueError(msg)
        self.default_name = default_name

    def get(self, name: str) -> ModelEntry | None:
        """Return the model of that name, usable or not."""
        return self.models.get(name)

    def provider(self, name: str) -> ProviderEntry | None:
        """Return the provider of that name."""
        return next((p for p in self.providers if p.name == name), None)

    @property
    def default(self) -> ModelEntry:
        """The system default model."""
        return self.models[self.default_name]

    def usable_by(self, role: str) -> list[ModelEntry]:
        """Return the models a user of this role may use, in catalogue order."""
        return [model for model in self.models.values() if model.usable_by(role)]

    def resolve(self, name: str | None, role: str, *, strict: bool = False) -> ModelEntry:
        """Return the model that answers for a name, for a user of a role.

        Args:
            name: The model asked for; None: the system default.
            role: The user's role.
            strict: Refuse a name the user may not use (an API client asked for it) instead of
                answering with the default (a conversation whose model was removed since).

        Returns:
            The model.

        Raises:
            ModelUnavailableError: With ``strict``, if the user may not use the model; without,
                if not even the default is usable (a default limited to admins).
        """
        if name is not None:
            model = self.models.get(name)
            if model is not None and model.usable_by(role):
                return model
            if strict:
                raise ModelUnavailableError(name)
        default = self.default
        if default.usable_by(role):
            return default
        # The system default is for other roles only: the first model this role may use.
        usable = self.usable_by(role)
        if not usable:
            raise ModelUnavailableError(name or default.name)
        return usable[0]

    def chain(self, name: str) -> tuple[ModelEntry, ...]:
        """Return the model and the fallbacks that answer when it fails, in order.

        Disabled fallbacks are skipped (their own fallbacks still count); a name seen twice
        ends the chain, so a cycle (which the admin API refuses) could not loop.

        Raises:
            KeyError: If no model has that name.
        """
        chain = [self.models[name]]
        seen = {name}
        following = chain[0].fallback
        while following is not None and following not in seen:
            seen.add(following)
            model = self.models.get(following)
            if model is None:
                break
            if model.enabled:
                chain.append(model)
            following = model.fallback
        return tuple(chain)


def managed_names(settings: CatalogueSettings) -> tuple[frozenset[str], frozenset[str]]:
    """Return the provider names and model names the settings' managed entries take.

    Stored providers and models may not use them.
    """
    providers, models, _ = _managed(settings)
    return (
        frozenset(p.name for p in providers) | {OFFLINE_PROVIDER, ENVIRONMENT_PROVIDER},
        frozenset(models),
    )


def settings_model_name(settings: CatalogueSettings) -> str:
    """Return the name of the managed default: the model the settings answer with.

    LLM_MODEL when a provider is configured, else ``offline``: the model a bot built from the
    settings (``Bot.from_settings``) answers with itself.
    """
    return _managed(settings)[2]


def _managed(
    settings: CatalogueSettings,
) -> tuple[list[ProviderEntry], dict[str, ModelEntry], str]:
    offline_provider = ProviderEntry(name=OFFLINE_PROVIDER, kind="offline", managed=True)
    models = {
        OFFLINE_MODEL_NAME: ModelEntry(
            name=OFFLINE_MODEL_NAME,
            provider=offline_provider,
            upstream_id=OFFLINE_MODEL_NAME,
            display_name="Offline (built-in)",
            description="The built-in model: answers without any provider, for trying the "
            "system out and when every provider is down.",
            managed=True,
        )
    }
    providers = [offline_provider]
    configured = bool(settings.openai_api_key or settings.openai_base_url)
    primary = settings.llm_model.strip()
    if not configured or primary in ("", OFFLINE_MODEL_NAME):
        return providers, models, OFFLINE_MODEL_NAME

    environment = ProviderEntry(
        name=ENVIRONMENT_PROVIDER,
        kind="openai",
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        timeout=settings.llm_timeout,
        managed=True,
    )
    providers.append(environment)
    fallback = settings.llm_fallback_model.strip() or None
    if fallback == primary:
        fallback = None
    for name, falls_back_to in ((primary, fallback), (fallback, None)):
        if name is None or name == OFFLINE_MODEL_NAME:
            continue
        models[name] = ModelEntry(
            name=name,
            provider=environment,
            upstream_id=name,
            display_name=name,
            description="Configured by the deployment (LLM_MODEL, LLM_FALLBACK_MODEL).",
            max_output_tokens=settings.llm_max_tokens,
            default_temperature=settings.llm_temperature,
            fallback=falls_back_to,
            managed=True,
        )
    # The managed entries list the default first.
    models = {primary: models[primary]} | models
    return providers, models, primary


def load_catalogue(
    session: Session, settings: CatalogueSettings, box: SecretBox, version: str = ""
) -> Catalogue:
    """Build the catalogue from the settings and the stored providers and models.

    A stored entry whose name a managed one took since (the settings changed) is left out and
    logged: the deployment's entries win. A stored key that cannot be decrypted (the key was
    rotated away) leaves its provider without a key and says why in ``key_error``.

    Args:
        session: A database session (read only).
        settings: Where the managed entries come from.
        box: Opens the stored provider keys.
        version: The catalogue version being loaded.

    Returns:
        The snapshot.
    """
    providers, models, default_name = _managed(settings)
    managed_providers = {p.name for p in providers} | {OFFLINE_PROVIDER, ENVIRONMENT_PROVIDER}
    stored_providers: dict[int, ProviderEntry] = {}
    for stored in session.scalars(select(Provider).order_by(Provider.name)).all():
        if stored.name in managed_providers:
            logger.warning(
                "stored provider %r is hidden by a managed one of that name", stored.name
            )
            continue
        api_key, key_error = "", None
        if stored.api_key_encrypted:
            try:
                api_key = box.open(stored.api_key_encrypted)
            except SecretBoxError as exc:
                key_error = str(exc)
                logger.warning("provider %r: its API key cannot be decrypted: %s", stored.name, exc)
        entry = ProviderEntry(
            name=stored.name,
            kind=stored.kind,
            base_url=stored.base_url,
            api_key=api_key,
            timeout=stored.timeout_seconds,
            extra_headers=dict(stored.extra_headers or {}),
            id=stored.id,
            key_error=key_error,
        )
        stored_providers[stored.id] = entry
        providers.append(entry)

    stored_default: str | None = None
    rows = session.scalars(
        select(ChatModel).options(joinedload(ChatModel.fallback)).order_by(ChatModel.name)
    ).all()
    for row in rows:
        provider = stored_providers.get(row.provider_id)
        if provider is None:
            continue
        if row.name in models:
            logger.warning("stored model %r is hidden by a managed one of that name", row.name)
            continue
        models[row.name] = ModelEntry(
            name=row.name,
            provider=provider,
            upstream_id=row.upstream_id,
            display_name=row.display_name,
            description=row.description,
            context_window=row.context_window,
            max_output_tokens=row.max_output_tokens,
            default_temperature=row.default_temperature,
            enabled=row.enabled,
            allowed_roles=frozenset(row.allowed_roles),
            fallback=row.fallback.name if row.fallback is not None else None,
            price_input=row.price_input_per_mtok,
            price_output=row.price_output_per_mtok,
            is_default=row.is_default,
            id=row.id,
        )
        if row.is_default and row.enabled:
            stored_default = row.name
    if stored_default is not None:
        default_name = stored_default
    return Catalogue(providers, models.values(), default_name, version)


def bump_catalogue_version(redis: Redis) -> str:
    """Tell every process the catalogue changed; call after the change is committed.

    Returns:
        The new version.
    """
    version = uuid.uuid4().hex
    redis.set(CATALOGUE_VERSION_KEY, version)
    return version


class CatalogueSource:
    """The process's catalogue: one snapshot, reloaded when the version in Redis moved on.

    Thread-safe; one instance per process (``webapp.chat.runtime``).
    """

    def __init__(self, redis: Redis, load: Callable[[str], Catalogue]) -> None:
        """Keep the loader; nothing is loaded before the first `current` call.

        Args:
            redis: Holds the version counter.
            load: Loads the catalogue at a version (its own database session).
        """
        self._redis = redis
        self._load = load
        self._snapshot: Catalogue | None = None
        self._lock = threading.Lock()

    def current(self) -> Catalogue:
        """Return the catalogue at the current version, loading it if it changed.

        One Redis GET per call; a reload reads the two tables once.

        Raises:
            redis.RedisError: If Redis cannot be reached (the routes answer 503, as for any
                Redis outage).
        """
        raw = self._redis.get(CATALOGUE_VERSION_KEY)
        version = raw.decode() if isinstance(raw, bytes) else (raw or "")
        snapshot = self._snapshot
        if snapshot is not None and snapshot.version == version:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.version != version:
                snapshot = self._load(version)
                self._snapshot = snapshot
            return snapshot
