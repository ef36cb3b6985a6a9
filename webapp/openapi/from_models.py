"""OpenAPI pieces generated from the request models (:mod:`webapp.request_models`).

A body model becomes a schema in ``components/schemas`` under the model's name, referenced by
the operation's ``requestBody``; a query model becomes the operation's query ``parameters``.
Tests compare every operation's request schema with its model's, so they cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from webapp.openapi.components import ref

__all__ = ["body_schema", "query_parameters", "request_body", "schemas"]

Document = dict[str, Any]


class _OpenApiSchema(GenerateJsonSchema):
    """Pydantic's JSON schema without the titles it derives from Python names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Leave out every field title (the property name says it)."""
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        """Leave out the model's title (its component name says it)."""
        result = super().model_schema(schema)
        result.pop("title", None)
        return result


def body_schema(model: type[BaseModel]) -> Document:
    """Return the JSON schema of a body model, as the components hold it.

    Args:
        model: A request body model.

    Returns:
        The schema (validation mode: what a client may send).
    """
    schema, _ = _schema_and_nested(model)
    return schema


def _schema_and_nested(model: type[BaseModel]) -> tuple[Document, dict[str, Document]]:
    # Nested models (a message inside a completion request) become schemas of their own in
    # the components, referenced from there, rather than $defs inside the body's schema.
    schema = model.model_json_schema(
        schema_generator=_OpenApiSchema,
        mode="validation",
        ref_template="#/components/schemas/{model}",
    )
    nested: dict[str, Document] = schema.pop("$defs", {})
    for each in (schema, *nested.values()):
        _drop_null_defaults(each)
    return schema, nested


def _drop_null_defaults(schema: Document) -> None:
    for prop in schema.get("properties", {}).values():
        # A field that may be left out but not sent as null (``display_name`` of a profile
        # update) has no default a client could send.
        if "default" in prop and prop["default"] is None and not _allows_null(prop):
            del prop["default"]


def _allows_null(schema: Document) -> bool:
    return schema.get("type") == "null" or any(_allows_null(v) for v in schema.get("anyOf", ()))


def schemas(*models: type[BaseModel]) -> dict[str, Document]:
    """Return ``components/schemas`` entries for body models (and the models nested in them),
    each under its class name."""
    entries: dict[str, Document] = {}
    for model in models:
        schema, nested = _schema_and_nested(model)
        entries.update(nested)
        entries[model.__name__] = schema
    return entries


def request_body(model: type[BaseModel], *, description: str, required: bool = True) -> Document:
    """Return a ``requestBody`` of ``application/json`` referencing a body model's schema.

    Args:
        model: The operation's body model (its schema must be in the components).
        description: What the body carries.
        required: Whether a body must be sent at all.

    Returns:
        The request body object.
    """
    return {
        "description": description,
        "required": required,
        "content": {"application/json": {"schema": ref(model.__name__)}},
    }


def _not_null(schema: Document) -> Document:
    # An optional parameter is simply left out: the null a model allows for it is not sent.
    variants = schema.get("anyOf")
    if not variants:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    kept = [v for v in variants if v != {"type": "null"}]
    if len(kept) != 1:
        return schema
    if rest.get("default", 0) is None:
        del rest["default"]
    return {**kept[0], **rest}


def query_parameters(model: type[BaseModel]) -> list[Document]:
    """Return the query ``parameters`` of an operation from its query model.

    Args:
        model: The operation's query model.

    Returns:
        One parameter object per field, in the model's order.
    """
    schema = body_schema(model)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        field_schema = _not_null(copy.deepcopy(prop))
        parameter: Document = {"name": name, "in": "query", "required": name in required}
        if "description" in field_schema:
            parameter["description"] = field_schema.pop("description")
        parameter["schema"] = field_schema
        parameters.append(parameter)
    return parameters
