"""Field types of the request models, carrying today's checks and their exact messages.

Each check raises :class:`ApiFieldError` with the final, client-facing message (naming the field
as the view argument or JSON key is spelled); :mod:`webapp.request_models.parsing` turns the
first error into the shared error shape. The JSON schema of each type documents what it checks,
so the OpenAPI documents say what the code does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from webapp.errors import ValidationError
from webapp.validation import check_text, parse_whole_number

__all__ = [
    "API_ERROR",
    "Flag",
    "Instant",
    "MinLength",
    "TextCheck",
    "WholeNumber",
    "api_error",
]

API_ERROR = "api_error"
"""Pydantic error type of every check here; its message is the one the client sees."""

_FLAGS = {"true": True, "false": False}


def api_error(message: str, *, field: str | None = None) -> PydanticCustomError:
    """Return a pydantic error that reaches the client with ``message`` unchanged.

    Args:
        message: The client-facing message.
        field: The field at fault, for a check of the whole model (a field's own checks are
            located by pydantic).

    Returns:
        The error to raise.
    """
    context = {"message": message} if field is None else {"message": message, "field": field}
    return PydanticCustomError(API_ERROR, "{message}", context)


def _name(info: ValidationInfo) -> str:
    # Checked fields carry no alias, so the field's name is the one the client sent.
    return info.field_name or ""


class _AfterCheck:
    """A check run after the annotated type's own validation (``_check`` has to be defined)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Run the check after the inner type's own."""
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str, info: ValidationInfo) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class TextCheck(_AfterCheck):
    """A string that PostgreSQL can store, with a length range (``check_text``).

    Attributes:
        max_length: Largest accepted length in characters.
        min_length: Smallest accepted length, counted after stripping surrounding whitespace.
        strip: Check the value without surrounding whitespace, as the service stores it.
    """

    max_length: int
    min_length: int = 0
    strip: bool = False

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the length range."""
        result = dict(handler(schema))
        if self.min_length:
            result["minLength"] = self.min_length
        result["maxLength"] = self.max_length
        return result

    def _check(self, value: str, info: ValidationInfo) -> str:
        try:
            check_text(
                value.strip() if self.strip else value,
                _name(info),
                min_length=self.min_length,
                max_length=self.max_length,
            )
        except ValidationError as exc:
            raise api_error(exc.message) from None
        return value


@dataclass(frozen=True)
class MinLength(_AfterCheck):
    """A string of at least ``length`` characters, whitespace included (a password's rule)."""

    length: int

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the smallest length."""
        return {**handler(schema), "minLength": self.length}

    def _check(self, value: str, info: ValidationInfo) -> str:
        if len(value) < self.length:
            raise api_error(f"{_name(info)} must be at least {self.length} characters")
        return value


class _QueryParse:
    """A query parameter parsed from its text in place of pydantic's own, laxer parsing.

    Pydantic would take ``+5``, `` 5`` or ``1_000`` for a number and ``on`` or ``1`` for true.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Parse with ``_parse`` alone."""
        return core_schema.with_info_plain_validator_function(self._parse)

    def _parse(self, value: object, info: ValidationInfo) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class WholeNumber(_QueryParse):
    """A query parameter holding a whole number in ASCII digits within a range."""

    minimum: int
    maximum: int

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the range."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def _parse(self, value: object, info: ValidationInfo) -> int:
        number = parse_whole_number(value, minimum=self.minimum, maximum=self.maximum)
        if number is None:
            raise api_error(
                f"{_name(info)} must be a whole number from {self.minimum} to {self.maximum}"
            )
        return number


@dataclass(frozen=True)
class Flag(_QueryParse):
    """A query parameter holding ``true`` or ``false``."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the two spellings."""
        return {"type": "string", "enum": list(_FLAGS)}

    def _parse(self, value: object, info: ValidationInfo) -> bool:
        if not isinstance(value, str) or value not in _FLAGS:
            raise api_error(f"{_name(info)} must be true or false")
        return _FLAGS[value]


# Longer than any ISO 8601 time: refused before it is parsed.
_INSTANT_MAX_LENGTH = 64


@dataclass(frozen=True)
class Instant(_QueryParse):
    """A point in time as ISO 8601 text with a UTC offset (``2026-01-31T12:00:00Z``), or a date.

    A date means midnight UTC. JSON has no time type, and strict models take no text for a
    datetime, so the text is parsed here (in a body as in a query string).
    """

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the format."""
        return {"type": "string", "format": "date-time", "maxLength": _INSTANT_MAX_LENGTH}

    def _parse(self, value: object, info: ValidationInfo) -> datetime:
        parsed = None
        if isinstance(value, str) and len(value) <= _INSTANT_MAX_LENGTH:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None or (parsed.tzinfo is None and len(value) != 10):  # type: ignore[arg-type]
            raise api_error(
                f"{_name(info)} must be an ISO 8601 time with a UTC offset, such as"
                " 2026-01-31T12:00:00Z, or a date (YYYY-MM-DD, midnight UTC)"
            )
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
