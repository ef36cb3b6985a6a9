"""The rules of the model catalogue's fields: each check returns the value to store.

Used by :mod:`webapp.services.catalogue_admin` (whoever makes the change: an admin through the
API, the playbook through ``chatbot catalogue seed``) and documented by the request models
(:mod:`webapp.request_models.catalogue`) from the constants here. Each check raises
:class:`~webapp.errors.ValidationError` naming the field, with the message the client sees.
Names reserved by the settings are the admin service's to refuse (it knows the settings).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from webapp.errors import ValidationError
from webapp.models import (
    MODEL_NAME_MAX_LENGTH,
    PROVIDER_NAME_MAX_LENGTH,
    UPSTREAM_MODEL_ID_MAX_LENGTH,
    USER_ROLES,
)
from webapp.validation import check_text
from webapp.webhooks.addresses import RefusedAddressError, check_url

__all__ = [
    "API_KEY_MAX_LENGTH",
    "BASE_URL_MAX_LENGTH",
    "DEFAULT_TIMEOUT_SECONDS",
    "DESCRIPTION_MAX_LENGTH",
    "DISPLAY_NAME_MAX_LENGTH",
    "HEADERS_MAX",
    "HEADER_VALUE_MAX_LENGTH",
    "MODEL_NAME_MAX_LENGTH",
    "MODEL_NAME_PATTERN",
    "PRICE_MAX",
    "PROVIDER_NAME_MAX_LENGTH",
    "PROVIDER_NAME_PATTERN",
    "TIMEOUT_MAX_SECONDS",
    "TOKENS_MAX",
    "UPSTREAM_ID_MAX_LENGTH",
    "api_key",
    "base_url",
    "flag",
    "format_decimal",
    "headers",
    "model_name",
    "optional_count",
    "optional_text",
    "price",
    "provider_name",
    "roles",
    "temperature",
    "text",
    "timeout",
    "unknown_fields",
]

PROVIDER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
UPSTREAM_ID_MAX_LENGTH = UPSTREAM_MODEL_ID_MAX_LENGTH
DISPLAY_NAME_MAX_LENGTH = MODEL_NAME_MAX_LENGTH
DESCRIPTION_MAX_LENGTH = 1000
BASE_URL_MAX_LENGTH = 2048  # the column's
API_KEY_MAX_LENGTH = 1000
TIMEOUT_MAX_SECONDS = 600.0
DEFAULT_TIMEOUT_SECONDS = 60.0
HEADERS_MAX = 20
HEADER_NAME_MAX_LENGTH = 100
HEADER_VALUE_MAX_LENGTH = 1000
TOKENS_MAX = 2**31 - 1
PRICE_MAX = Decimal("999999.999999")

_PROVIDER_NAME = re.compile(PROVIDER_NAME_PATTERN.strip("^$"))
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN.strip("^$"))
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the HTTP client sets itself: the key goes in Authorization, the rest is HTTP's own.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})
# Header values are sent as they are: printable ASCII (a line break would end the header).
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
# A key is sent in the Authorization header: printable ASCII, no spaces.
_API_KEY = re.compile(r"[\x21-\x7e]+")
_MICRO = Decimal("0.000001")
_PRICE_TEXT_MAX_LENGTH = 32


def format_decimal(value: Decimal | None) -> str | None:
    """Return a decimal as exact text without trailing zeros (``0.15``, ``3``), or None."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def unknown_fields(changes: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse a field that is not one of ``known`` (the first in sorted order).

    Raises:
        ValidationError: ``Unknown field: x``, naming it.
    """
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ValidationError(f"Unknown field: {unknown[0]}", field=unknown[0])


def text(value: Any, name: str, *, min_length: int, max_length: int) -> str:
    """Check a text field (storable, length within range) and return it stripped."""
    if not isinstance(value, str):
        if value is None:
            raise ValidationError(f"{name} is required", field=name)
        raise ValidationError(f"{name} must be a string", field=name)
    check_text(value, name, min_length=min_length, max_length=max_length)
    return value.strip()


def optional_text(value: Any, name: str, *, max_length: int) -> str:
    """Check a text field that null or ``""`` leaves empty."""
    return "" if value is None else text(value, name, min_length=0, max_length=max_length)


def _name(value: Any, pattern: re.Pattern[str], max_length: int, rule: str) -> str:
    name = text(value, "name", min_length=1, max_length=max_length)
    if not pattern.fullmatch(name):
        raise ValidationError(f"name must be {rule}", field="name")
    return name


def provider_name(value: Any) -> str:
    """Check a provider's name: ``[a-z0-9][a-z0-9._-]*``, 1 to 64 characters."""
    return _name(
        value,
        _PROVIDER_NAME,
        PROVIDER_NAME_MAX_LENGTH,
        "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
    )


def model_name(value: Any) -> str:
    """Check a model's public name: ``[A-Za-z0-9][A-Za-z0-9._:/-]*``, 1 to 100 characters."""
    return _name(
        value,
        _MODEL_NAME,
        MODEL_NAME_MAX_LENGTH,
        "letters, digits, '.', '_', ':', '/' and '-', starting with a letter or digit",
    )


def base_url(value: Any) -> str:
    """Check a provider's base URL (http(s), a host, no credentials, query or fragment).

    Any address is allowed: providers are often on the private network, and only admins
    choose them (webhooks, chosen the same way but sent user data, are guarded).

    Returns:
        The URL without a trailing slash.
    """
    url = text(value, "base_url", min_length=1, max_length=BASE_URL_MAX_LENGTH)
    try:
        parts = check_url(url)
    except RefusedAddressError as exc:
        # The shared check speaks of "url"; this field is base_url.
        message = str(exc).removeprefix("url ")
        raise ValidationError(f"base_url {message}", field="base_url") from None
    if parts.query or url.endswith("?"):
        # API paths are appended to it (/models); a query would also end up in the audit log.
        raise ValidationError("base_url must not have a query string", field="base_url")
    return url.rstrip("/")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a number", field=name)
    return float(value)


def timeout(value: Any) -> float:
    """Check a request timeout in seconds: more than 0, at most 600."""
    seconds = _number(value, "timeout_seconds")
    if not 0 < seconds <= TIMEOUT_MAX_SECONDS:
        raise ValidationError(
            f"timeout_seconds must be more than 0 and at most {TIMEOUT_MAX_SECONDS:g}",
            field="timeout_seconds",
        )
    return seconds


def headers(value: Any) -> dict[str, str]:
    """Check extra headers: at most 20, token names (not the client's own), ASCII values."""
    field = "extra_headers"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be an object of header names to values", field=field)
    if len(value) > HEADERS_MAX:
        raise ValidationError(f"{field} must have at most {HEADERS_MAX} headers", field=field)
    checked: dict[str, str] = {}
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
        if name.lower() in {seen.lower() for seen in checked}:
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
        checked[name] = header
    return checked


def api_key(value: Any) -> str | None:
    """Check an API key: printable ASCII without spaces; None or ``""`` means no key."""
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


def optional_count(value: Any, name: str) -> int | None:
    """Check a token count (1 to 2**31 - 1) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TOKENS_MAX:
        raise ValidationError(f"{name} must be a whole number from 1 to {TOKENS_MAX}", field=name)
    return value


def temperature(value: Any) -> float | None:
    """Check a default temperature (0 to 2) or None."""
    if value is None:
        return None
    degrees = _number(value, "default_temperature")
    if not 0 <= degrees <= 2:
        raise ValidationError(
            "default_temperature must be from 0 to 2", field="default_temperature"
        )
    return degrees


def flag(value: Any, name: str) -> bool:
    """Check a boolean."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
    return value


def roles(value: Any) -> list[str]:
    """Check a non-empty list of roles; return them without duplicates, in USER_ROLES order."""
    field = "allowed_roles"
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f"{field} must be a non-empty list of: {', '.join(USER_ROLES)}", field=field
        )
    for role in value:
        if not isinstance(role, str) or role not in USER_ROLES:
            raise ValidationError(
                f"{field}: unknown role {str(role)[:20]!r}; choose from {', '.join(USER_ROLES)}",
                field=field,
            )
    return [role for role in USER_ROLES if role in value]


def price(value: Any, name: str) -> Decimal | None:
    """Check a price per 1M tokens: 0 to 999999.999999, at most 6 decimals; or None.

    A decimal string is exact; a JSON number is read through its shortest text (``0.1``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{name} must be a decimal number or null", field=name)
    raw = str(value).strip()
    try:
        amount = Decimal(raw) if len(raw) <= _PRICE_TEXT_MAX_LENGTH else Decimal("nan")
    except InvalidOperation:
        amount = Decimal("nan")
    if not amount.is_finite() or not 0 <= amount <= PRICE_MAX:
        raise ValidationError(f"{name} must be a number from 0 to {PRICE_MAX}", field=name)
    if amount != amount.quantize(_MICRO):
        raise ValidationError(f"{name} must have at most 6 decimal places", field=name)
    return amount
