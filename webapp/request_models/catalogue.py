"""Request models of the model catalogue's admin routes (``/api/v1/admin/providers``, ``/models``).

The models check types only; the rules (names, URLs, ranges, fallback cycles, reserved names)
are :mod:`webapp.services.catalogue_admin`'s, which the ``chatbot catalogue seed`` command
shares. The JSON schemas document those rules. On an update, a field left out stays as it is
and a null clears it (where it may be cleared): the routes pass only the fields sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from webapp.models import USER_ROLES
from webapp.request_models.fields import api_error
from webapp.request_models.parsing import MODEL_CONFIG
from webapp.services import catalogue_fields as rules

__all__ = ["ModelCreate", "ModelUpdate", "ProviderCreate", "ProviderUpdate", "fields_sent"]


def fields_sent(body: BaseModel) -> dict[str, Any]:
    """Return the fields a client sent (nulls included), as the service's changes.

    Args:
        body: A parsed body.

    Returns:
        Field name to value, for the fields present in the JSON object.
    """
    return {name: getattr(body, name) for name in body.model_fields_set}


def _required(model: BaseModel, *names: str) -> None:
    for name in names:
        if getattr(model, name) is None:
            raise api_error(f"{name} is required", field=name)


_ProviderName = Annotated[
    str,
    Field(
        description=f"Unique, 1 to {rules.PROVIDER_NAME_MAX_LENGTH} characters of lower-case"
        " letters, digits, `.`, `_` and `-`, starting with a letter or digit; not a managed"
        " name (`offline`, `environment`: 409).",
        json_schema_extra={
            "pattern": rules.PROVIDER_NAME_PATTERN,
            "maxLength": rules.PROVIDER_NAME_MAX_LENGTH,
            "examples": ["local-vllm"],
        },
    ),
]
_BaseUrl = Annotated[
    str,
    Field(
        description="http(s) URL of the OpenAI-compatible API, up to the version"
        " (`https://api.example.com/v1`); no credentials, query or fragment.",
        json_schema_extra={
            "format": "uri",
            "maxLength": rules.BASE_URL_MAX_LENGTH,
            "examples": ["http://10.0.0.5:8000/v1"],
        },
    ),
]
_ApiKey = Annotated[
    str,
    Field(
        description="Write only: stored encrypted, never returned (only whether one is set"
        ' and its last 4 characters). `""` or null removes it. 409'
        " `key_encryption_unavailable` when PROVIDER_KEY_SECRETS is not configured.",
        json_schema_extra={"maxLength": rules.API_KEY_MAX_LENGTH, "writeOnly": True},
    ),
]
_Timeout = Annotated[
    float,
    Field(
        description="Seconds a request to the provider may take.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": rules.TIMEOUT_MAX_SECONDS},
    ),
]
# Any object: the names and values are the service's to check (its message names the header).
_Headers = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": rules.HEADERS_MAX,
            "additionalProperties": {"type": "string", "maxLength": rules.HEADER_VALUE_MAX_LENGTH},
            "description": "Sent with every request to the provider (names: HTTP token"
            " characters; not `Authorization`, which carries the key). Shown masked.",
        }
    ),
]


class ProviderUpdate(BaseModel):
    """Fields to change; absent ones stay as they are."""

    model_config = MODEL_CONFIG

    name: _ProviderName | None = None
    base_url: _BaseUrl | None = None
    api_key: _ApiKey | None = None
    timeout_seconds: _Timeout | None = None
    extra_headers: _Headers | None = None


class ProviderCreate(ProviderUpdate):
    """The new provider: `name` and `base_url` are required."""

    model_config = ConfigDict(**MODEL_CONFIG, json_schema_extra={"required": ["name", "base_url"]})

    @model_validator(mode="after")
    def _present(self) -> Self:
        _required(self, "name", "base_url")
        return self


_ModelName = Annotated[
    str,
    Field(
        description=f"Unique public id clients send as `model`: 1 to"
        f" {rules.MODEL_NAME_MAX_LENGTH} characters of letters, digits and `._:/-`, starting"
        " with a letter or digit; not a managed name (`offline`, LLM_MODEL...: 409).",
        json_schema_extra={
            "pattern": rules.MODEL_NAME_PATTERN,
            "maxLength": rules.MODEL_NAME_MAX_LENGTH,
            "examples": ["llama-3.1-8b"],
        },
    ),
]
_Price = Annotated[
    str | float | int,
    WithJsonSchema(
        {
            "type": ["string", "number", "null"],
            "description": "Currency units per 1M tokens, 0 to 999999.999999 (a decimal"
            " string keeps it exact); null: unknown, no cost reported.",
            "examples": ["0.15"],
        }
    ),
]
_Count = Annotated[
    int,
    Field(json_schema_extra={"minimum": 1, "maximum": rules.TOKENS_MAX}),
]
_Roles = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(USER_ROLES)},
            "description": "Roles that may use the model (default: every role).",
        }
    ),
]


class ModelUpdate(BaseModel):
    """Fields to change; absent ones stay as they are, null clears an optional one."""

    model_config = MODEL_CONFIG

    provider: str | None = Field(
        None,
        description="Name of a stored provider (managed ones take no models).",
        json_schema_extra={"maxLength": rules.PROVIDER_NAME_MAX_LENGTH},
    )
    name: _ModelName | None = None
    upstream_id: str | None = Field(
        None,
        description="The model's id at the provider (see discover).",
        json_schema_extra={"maxLength": rules.UPSTREAM_ID_MAX_LENGTH},
    )
    display_name: str | None = Field(
        None,
        description="Shown to users; default (and null): the name.",
        json_schema_extra={"maxLength": rules.DISPLAY_NAME_MAX_LENGTH},
    )
    description: str | None = Field(
        None, json_schema_extra={"maxLength": rules.DESCRIPTION_MAX_LENGTH}
    )
    context_window: _Count | None = Field(None, description="Tokens; null: unknown.")
    max_output_tokens: _Count | None = Field(
        None, description="Tokens a reply may take; null: LLM_MAX_TOKENS."
    )
    default_temperature: float | None = Field(
        None,
        description="0 to 2; null: LLM_TEMPERATURE.",
        json_schema_extra={"minimum": 0, "maximum": 2},
    )
    enabled: bool | None = Field(None, description="False hides it from everybody.")
    allowed_roles: _Roles | None = None
    fallback: str | None = Field(
        None,
        description="Name of the stored model that answers when this one fails (chains"
        " allowed, cycles refused: 400 naming `fallback`); null: none.",
        json_schema_extra={"maxLength": rules.MODEL_NAME_MAX_LENGTH},
    )
    price_input_per_mtok: _Price | None = None
    price_output_per_mtok: _Price | None = None
    is_default: bool | None = Field(
        None, description="True makes it the system default (the previous one stops being)."
    )


class ModelCreate(ModelUpdate):
    """The new model: `provider`, `name` and `upstream_id` are required."""

    model_config = ConfigDict(
        **MODEL_CONFIG, json_schema_extra={"required": ["provider", "name", "upstream_id"]}
    )

    @model_validator(mode="after")
    def _present(self) -> Self:
        _required(self, "provider", "name", "upstream_id")
        return self
