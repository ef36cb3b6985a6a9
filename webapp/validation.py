"""Checks for values that arrive from clients, raising :class:`ValidationError` naming the field.

Plain Python with no Flask imports: blueprints use these to check the *shape* of a payload
(presence, types, unknown fields) and services use them to enforce the rules every caller must
obey (lengths, formats), whether the caller is a route or the CLI.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from webapp.errors import ValidationError

__all__ = ["check_text", "optional_string", "reject_unknown_fields", "required_string"]


def reject_unknown_fields(data: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse a payload carrying fields the endpoint does not accept.

    Silently ignoring unknown fields would let a client believe it set something (``role``,
    ``is_admin``) that was in fact dropped, so they are an error.

    Args:
        data: The decoded JSON object.
        allowed: Field names the endpoint accepts.

    Raises:
        ValidationError: Naming the first unknown field in sorted order.
    """
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError(f"Unknown field: {unknown[0]}", field=unknown[0])


def required_string(data: Mapping[str, Any], name: str) -> str:
    """Return ``data[name]``, which must be present and a string.

    Args:
        data: The decoded JSON object.
        name: The field to read.

    Returns:
        The string value, unchanged.

    Raises:
        ValidationError: If the field is missing, null or not a string.
    """
    value = data.get(name)
    if value is None:
        raise ValidationError(f"{name} is required", field=name)
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    return value


def optional_string(data: Mapping[str, Any], name: str) -> str | None:
    """Return ``data[name]`` if present and not null; it must then be a string.

    Args:
        data: The decoded JSON object.
        name: The field to read.

    Returns:
        The string value, or None when the field is absent or null.

    Raises:
        ValidationError: If the field is present but not a string.
    """
    if data.get(name) is None:
        return None
    return required_string(data, name)


def check_text(value: str, name: str, *, min_length: int, max_length: int) -> str:
    """Check that a string can be stored and has an acceptable length.

    PostgreSQL rejects NUL characters in text and lone surrogates cannot be encoded as UTF-8;
    both would otherwise surface as a 500 at insert time.

    Args:
        value: The string to check.
        name: Field name used in the error.
        min_length: Smallest accepted length in characters, counted after stripping
            surrounding whitespace (so a blank value does not count as present).
        max_length: Largest accepted length in characters.

    Returns:
        The value, unchanged.

    Raises:
        ValidationError: If the value cannot be stored or its length is out of range.
    """
    if "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} must be valid Unicode text", field=name) from None
    if len(value.strip()) < min_length:
        if min_length == 1:
            raise ValidationError(f"{name} must not be empty", field=name)
        raise ValidationError(f"{name} must be at least {min_length} characters", field=name)
    if len(value) > max_length:
        raise ValidationError(f"{name} must be at most {max_length} characters", field=name)
    return value
