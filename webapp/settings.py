"""Application settings, read once from the environment and validated.

Every process (the three gunicorn services, the ``chatbot`` CLI) builds one :class:`Settings`
from its environment at start. A bad or missing variable stops the process with a message that
names every offending variable, so an operator fixes the env file in one pass.

:class:`Settings` (after the converters it uses) declares each variable once, with its converter
and its default; the app role's defaults and the documentation are tested against it
(``tests/unit/test_role_defaults.py``).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

from limits import parse_many

from webapp.services_list import SERVICE_NAMES, SERVICES

__all__ = ["LOG_LEVELS", "Settings", "SettingsError", "env_name"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SECRET_KEY_MIN_LENGTH = 32
STATUS_SERVICES = SERVICE_NAMES
# Each service on the port the app role gives it on the app host.
DEFAULT_STATUS_SERVICE_URLS = tuple((service.name, service.local_url) for service in SERVICES)
# Field metadata key: how the field's environment variable is converted and validated.
_CONVERT = "convert"

# SQLAlchemy picks psycopg2 for a bare ``postgresql://`` URL; only psycopg 3 is installed.
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")

_T = TypeVar("_T")


class SettingsError(ValueError):
    """Raised when the environment does not describe a valid configuration.

    Attributes:
        errors: Maps each offending variable name to what is wrong with it.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        """Build the error from a mapping of variable name to problem."""
        self.errors = dict(errors)
        details = "; ".join(f"{name} {problem}" for name, problem in self.errors.items())
        super().__init__(f"invalid configuration: {details}")


class _EnvReader:
    """Read and convert variables, collecting every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.errors: dict[str, str] = {}

    def _raw(self, name: str) -> str:
        return self._environ.get(name, "").strip()

    def required(self, name: str, convert: Callable[[str], _T]) -> _T | None:
        raw = self._raw(name)
        if not raw:
            self.errors[name] = "is required"
            return None
        return self._convert(name, raw, convert)

    def optional(self, name: str, convert: Callable[[str], _T], default: _T) -> _T | None:
        raw = self._raw(name)
        if not raw:
            return default
        return self._convert(name, raw, convert)

    def _convert(self, name: str, raw: str, convert: Callable[[str], _T]) -> _T | None:
        try:
            return convert(raw)
        except ValueError as exc:
            self.errors[name] = str(exc)
            return None


def _database_url(raw: str) -> str:
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in _POSTGRES_SCHEMES or not rest:
        raise ValueError("must be a PostgreSQL URL such as postgresql://user:password@host/db")
    return f"postgresql+psycopg://{rest}"


def _redis_url(raw: str) -> str:
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in _REDIS_SCHEMES or not rest:
        raise ValueError("must be a Redis URL such as redis://:password@host:6379/0")
    return raw


def _secret_key(raw: str) -> str:
    if len(raw) < SECRET_KEY_MIN_LENGTH:
        raise ValueError(f"must be at least {SECRET_KEY_MIN_LENGTH} characters long")
    return raw


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return convert


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {raw!r}")
    return value


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def convert(raw: str) -> float:
        value = _float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def _positive_float(raw: str) -> float:
    value = _float(raw)
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {raw!r}")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    for origin in origins:
        if origin != "*":
            _http_url(origin)
    return origins


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            raise ValueError(
                f"must be comma-separated networks such as '10.0.0.0/8, fd00::/8', got {item!r}"
            ) from None
    return tuple(networks)


def _rate_limit(raw: str) -> str:
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError(
            f"must be a rate limit such as '10 per minute' or '5/minute;50/day', got {raw!r}"
        ) from None
    return raw


def _service_urls(raw: str) -> tuple[tuple[str, str], ...]:
    urls: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, url = (piece.strip() for piece in item.partition("="))
        if not sep or name not in STATUS_SERVICES:
            raise ValueError(
                f"must be comma-separated service=URL pairs with services among"
                f" {', '.join(STATUS_SERVICES)}, such as 'auth=http://10.0.0.5:8001', got {item!r}"
            )
        if name in urls:
            raise ValueError(f"names the service {name!r} twice")
        urls[name] = _http_url(url).rstrip("/")
    return tuple(urls.items())


def _secrets_list(raw: str) -> tuple[str, ...]:
    values = tuple(item.strip() for item in raw.split(",") if item.strip())
    for value in values:
        if len(value) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(f"each key must be at least {SECRET_KEY_MIN_LENGTH} characters long")
    return values


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def _setting(convert: Callable[[str], Any], default: Any = MISSING, *, secret: bool = False) -> Any:
    """Declare a setting: its converter and its default (none: the variable is required).

    Secrets (and URLs that may carry passwords) are left out of ``repr``.
    """
    metadata = {_CONVERT: convert}
    if default is MISSING:
        return field(repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


def env_name(field_name: str) -> str:
    """Return the environment variable of the setting ``field_name`` (its name in upper case)."""
    return field_name.upper()


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one process.

    Each field is one environment variable (its name in upper case) and its default here is
    the only one: the app role's defaults, the README and the tests are checked against it.
    Fields without a default are required. Secrets and URLs that may carry passwords are left
    out of ``repr`` so that logging a ``Settings`` cannot leak them.
    """

    database_url: str = _setting(_database_url, secret=True)
    redis_url: str = _setting(_redis_url, secret=True)
    secret_key: str = _setting(_secret_key, secret=True)
    database_pool_size: int = _setting(_int_at_least(1), 5)
    access_token_expire_minutes: int = _setting(_int_at_least(1), 15)
    refresh_token_expire_days: int = _setting(_int_at_least(1), 7)
    llm_model: str = _setting(str, "offline")
    llm_fallback_model: str = _setting(str, "")
    llm_max_tokens: int = _setting(_int_at_least(1), 512)
    llm_temperature: float = _setting(_float_between(0.0, 2.0), 0.7)
    # 0 disables the reply cache.
    llm_cache_ttl: int = _setting(_int_at_least(0), 3600)
    llm_timeout: float = _setting(_positive_float, 60.0)
    # Tokens (in + out) a user's replies may cost a model per UTC day; 0: no quota.
    llm_daily_token_quota: int = _setting(_int_at_least(0), 200_000)
    # Replies one chat worker process generates at once; beyond it, 503 and retry.
    llm_max_concurrent_replies: int = _setting(_int_at_least(1), 64)
    # Seconds a finished reply's token stream stays in Redis for clients to resume.
    reply_stream_ttl: int = _setting(_int_at_least(1), 120)
    rate_limit_requests: int = _setting(_int_at_least(1), 100)
    rate_limit_window: int = _setting(_int_at_least(1), 60)
    # Limits in the syntax of the `limits` library: "10 per minute", "5/minute;50/day".
    login_rate_limit: str = _setting(_rate_limit, "10 per minute")
    register_rate_limit: str = _setting(_rate_limit, "10 per hour")
    # Proxies in front of the app whose X-Forwarded-For is trusted (nginx: 1). 0 when
    # clients reach the app directly, or they could pick their own address.
    trusted_proxy_count: int = _setting(_int_at_least(0), 1)
    webhook_secret: str = _setting(str, "", secret=True)
    webhook_timeout: float = _setting(_positive_float, 5.0)
    # Private networks webhooks may still be delivered to (CIDRs, comma-separated).
    webhook_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _setting(
        _networks, ()
    )
    cors_origins: tuple[str, ...] = _setting(_origins, ())
    log_level: str = _setting(_log_level, "INFO")
    openai_api_key: str = _setting(str, "", secret=True)
    # Keys that encrypt the providers' API keys in the database (webapp.secretbox), comma-
    # separated: the first encrypts, every one decrypts (rotation keeps the previous one second
    # until `chatbot catalogue rekey` re-encrypted everything). Empty: no provider key can be
    # stored.
    provider_key_secrets: tuple[str, ...] = _setting(_secrets_list, (), secret=True)
    openai_base_url: str = _setting(_http_url, "")
    # Where the admin status page asks each service for /health.
    status_service_urls: tuple[tuple[str, str], ...] = _setting(
        _service_urls, DEFAULT_STATUS_SERVICE_URLS
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from environment variables.

        Empty values count as unset, so a blank line in an env file falls back to the default.

        Args:
            environ: The environment, usually ``os.environ``.

        Returns:
            The validated settings.

        Raises:
            SettingsError: If any variable is missing or invalid; the message names all of them.
        """
        reader = _EnvReader(environ)
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name, convert = env_name(setting.name), setting.metadata[_CONVERT]
            if setting.default is MISSING:
                values[setting.name] = reader.required(name, convert)
            else:
                values[setting.name] = reader.optional(name, convert, setting.default)
        if reader.errors:
            raise SettingsError(reader.errors)
        return cls(**values)
