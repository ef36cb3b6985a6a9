"""Checks for values that arrive from clients, raising :class:`ValidationError` naming the field.

Plain Python with no Flask imports: services use them to enforce the rules every caller must
obey (lengths, formats), whether the caller is a route or the CLI, and the request models
(:mod:`webapp.request_models`) build their field types on them.
"""

from __future__ import annotations

import re

from webapp.errors import ValidationError

__all__ = [
    "bounded_int",
    "check_text",
    "parse_whole_number",
]

# Plain ASCII digits: int() would also take "+5", " 5", "1_000" and other scripts' digits.
# Nineteen are enough for the largest BIGINT (2**63 - 1) and keep int() from parsing huge text.
_DIGITS = re.compile(r"[0-9]{1,19}")


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


def bounded_int(value: str, name: str, *, minimum: int, maximum: int) -> int:
    """Parse a decimal integer from text (a query parameter) and check its range.

    Args:
        value: The text, plain ASCII digits.
        name: Parameter name used in the error.
        minimum: Smallest accepted value.
        maximum: Largest accepted value.

    Returns:
        The number.

    Raises:
        ValidationError: If the text is not a whole number in ``[minimum, maximum]``.
    """
    number = parse_whole_number(value, minimum=minimum, maximum=maximum)
    if number is None:
        raise ValidationError(
            f"{name} must be a whole number from {minimum} to {maximum}", field=name
        )
    return number


def parse_whole_number(value: object, *, minimum: int, maximum: int) -> int | None:
    """Parse a decimal integer written in plain ASCII digits, if it lies in a range.

    Args:
        value: Text that should hold the number (anything else gives None).
        minimum: Smallest accepted value.
        maximum: Largest accepted value.

    Returns:
        The number, or None if ``value`` is not such a number in ``[minimum, maximum]``.
    """
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None
