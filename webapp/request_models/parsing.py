"""Parse a request's JSON body and query string into its model, with errors in the shared shape.

Views declare their models with :func:`accepts`, which parses the request before the view runs
and hands it the result (``body=``, ``query=``). The declaration stays on the view function, so
the OpenAPI documents and the tests find every operation's models in the app's URL map.

Errors keep the messages clients have always got: an unknown field first (the first in sorted
order), then a parameter given twice, then the first field at fault in the model's order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from flask import request
from pydantic import BaseModel, ConfigDict
from pydantic_core import ErrorDetails

from webapp.errors import ValidationError
from webapp.request_body import read_json_object
from webapp.request_models.fields import API_ERROR

__all__ = [
    "MODEL_CONFIG",
    "RequestModels",
    "accepts",
    "check_body",
    "check_query",
    "parse_body",
    "parse_query",
    "request_models",
]

MODEL_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)
"""Configuration of every request model: an undeclared field is an error, types are exact."""

_ATTRIBUTE = "request_models"
# What a field of the wrong type must be, by pydantic's error type (strict mode: no coercion).
_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list of event names",
}

Model = TypeVar("Model", bound=BaseModel)
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class RequestModels:
    """The models of one operation.

    Attributes:
        body: Model of the JSON body, if the operation takes one.
        query: Model of the query string, if the operation reads one.
        body_required: Whether a body must be sent (else no body at all means ``{}``).
    """

    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body_required: bool = True


def _field(error: ErrorDetails) -> str:
    return str(error["loc"][0]) if error["loc"] else ""


def _first_error(
    errors: Sequence[ErrorDetails], *, unknown: str, repeated: Sequence[str] = ()
) -> ValidationError | None:
    extra = sorted(_field(e) for e in errors if e["type"] == "extra_forbidden")
    if extra:
        return ValidationError(f"{unknown}: {extra[0]}", field=extra[0])
    if repeated:
        return ValidationError(f"{repeated[0]} must be given once", field=repeated[0])
    if not errors:
        return None
    error = errors[0]
    name = _field(error)
    kind = error["type"]
    if kind == API_ERROR:
        return ValidationError(error["msg"], field=error.get("ctx", {}).get("field", name))
    # A null where a value is needed is as good as missing (as it always was here).
    if kind == "missing" or (kind in _EXPECTED and error["input"] is None):
        return ValidationError(f"{name} is required", field=name)
    if kind in _EXPECTED:
        return ValidationError(f"{name} must be {_EXPECTED[kind]}", field=name)
    return ValidationError(f"{name} is not valid: {error['msg']}", field=name)


def _validate(
    model: type[Model], data: Mapping[str, Any], *, unknown: str, repeated: Sequence[str] = ()
) -> Model:
    try:
        parsed = model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors: Sequence[ErrorDetails] = exc.errors()
    else:
        errors = ()
    failure = _first_error(errors, unknown=unknown, repeated=repeated)
    if failure is not None:
        raise failure from None
    return parsed


def check_body(model: type[Model], data: Mapping[str, Any]) -> Model:
    """Return a decoded JSON object as ``model``.

    Args:
        model: The operation's body model.
        data: The decoded object.

    Returns:
        The parsed body.

    Raises:
        ValidationError: Naming the first unknown field (in sorted order), else the first
            invalid one (in the model's order).
    """
    return _validate(model, data, unknown="Unknown field")


def check_query(model: type[Model], params: Mapping[str, Sequence[str]]) -> Model:
    """Return a query string's parameters as ``model``; each must be given at most once.

    As with unknown body fields, a parameter the endpoint ignores (``sort=``, ``page=``) would
    let a client believe it had an effect; a repeated one leaves unclear which value counts.

    Args:
        model: The operation's query model.
        params: Every value of every parameter (``request.args.to_dict(flat=False)``).

    Returns:
        The parsed parameters.

    Raises:
        ValidationError: Naming the first unknown parameter (in sorted order), else the first
            repeated one, else the first invalid one (in the model's order).
    """
    repeated = [name for name, values in params.items() if len(values) != 1]
    first = {name: values[0] for name, values in params.items() if values}
    return _validate(model, first, unknown="Unknown query parameter", repeated=repeated)


def parse_body(model: type[Model], *, required: bool = True) -> Model:
    """Return the request's JSON body as ``model`` (see :func:`check_body`).

    Args:
        model: The operation's body model.
        required: Whether a body must be sent; without one, ``{}`` is parsed.

    Returns:
        The parsed body.

    Raises:
        UnsupportedMediaType: If the body is not declared as JSON (415).
        ValidationError: If it is not a JSON object, or a field is unknown or invalid.
    """
    return check_body(model, read_json_object(allow_empty=not required))


def parse_query(model: type[Model]) -> Model:
    """Return the request's query string as ``model`` (see :func:`check_query`).

    Args:
        model: The operation's query model.

    Returns:
        The parsed parameters.

    Raises:
        ValidationError: If a parameter is unknown, repeated or invalid.
    """
    return check_query(model, request.args.to_dict(flat=False))


def accepts(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    body_required: bool = True,
) -> Callable[[View], View]:
    """Declare a view's request models: the view gets the parsed ``body`` and ``query``.

    Place it right above the view function, below the authentication decorators, so that an
    unauthenticated request is refused before its body is read.

    Args:
        body: Model of the JSON body.
        query: Model of the query string.
        body_required: Whether a body must be sent (else no body at all means ``{}``).

    Returns:
        The decorator.
    """
    models = RequestModels(body=body, query=query, body_required=body_required)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            # The query first: it is the cheaper to check, and no route has both.
            if models.query is not None:
                kwargs["query"] = parse_query(models.query)
            if models.body is not None:
                kwargs["body"] = parse_body(models.body, required=models.body_required)
            return view(*args, **kwargs)

        setattr(parsed, _ATTRIBUTE, models)
        return parsed  # type: ignore[return-value]

    return decorate


def request_models(view: Callable[..., Any]) -> RequestModels | None:
    """Return the models declared for a view with :func:`accepts` (through any decorators)."""
    models = getattr(view, _ATTRIBUTE, None)
    return models if isinstance(models, RequestModels) else None
