"""Request models of the admin service (``/api/v1/admin``), its webhook routes included."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from webapp.models import (
    USER_ROLES,
    WEBHOOK_DELIVERY_STATUSES,
    WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_EVENTS,
    WEBHOOK_URL_MAX_LENGTH,
    AuditEvent,
    User,
    WebhookDelivery,
    max_id,
)
from webapp.request_models.auth import NewPassword
from webapp.request_models.fields import Flag, TextCheck, WholeNumber, api_error
from webapp.request_models.parsing import MODEL_CONFIG
from webapp.services import audit, conversations, usage, users_admin
from webapp.services.webhooks import PING_EVENT

__all__ = [
    "DELIVERIES_PAGE_DEFAULT",
    "DELIVERIES_PAGE_MAX",
    "ApiKeyListQuery",
    "AuditQuery",
    "DeliveryListQuery",
    "NoQuery",
    "PasswordReset",
    "UsageQuery",
    "UserConversationsQuery",
    "UserListQuery",
    "UserUpdate",
    "WebhookCreate",
    "WebhookUpdate",
]

DELIVERIES_PAGE_DEFAULT = 50
DELIVERIES_PAGE_MAX = 100
# A filter value is compared in SQL: NUL or lone surrogates would fail there as a 500.
_Filter = Annotated[str, TextCheck(min_length=1, max_length=254)]
_PAGE_SIZE = "Page size."
_CURSOR = "`next_cursor` of the previous page, unchanged (keyset pagination)."


def _whole(maximum: int) -> WholeNumber:
    return WholeNumber(1, maximum)


# Ids (filters, keyset cursors) within the range of the column they are compared with.
_UserId = Annotated[int, _whole(max_id(User.id))]
_ActorId = Annotated[int, _whole(max_id(AuditEvent.actor_id))]
_AuditEventId = Annotated[int, _whole(max_id(AuditEvent.id))]
_DeliveryId = Annotated[int, _whole(max_id(WebhookDelivery.id))]


# --- bodies -------------------------------------------------------------------------------------


class UserUpdate(BaseModel):
    """What to change: the role, the daily token quota, or both."""

    model_config = MODEL_CONFIG

    role: Annotated[str, Field(json_schema_extra={"enum": list(USER_ROLES)})] | None = Field(
        None, description="The new role (409 for the last active admin)."
    )
    daily_token_quota: int | None = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": users_admin.QUOTA_MAX},
        description="Tokens (in + out) the user may spend per UTC day; 0: unlimited; null:"
        " the global LLM_DAILY_TOKEN_QUOTA.",
    )

    # Checked once every field has its type: at least one must be sent, and a role not null.
    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set or ("role" in self.model_fields_set and self.role is None):
            raise api_error("role is required (or daily_token_quota)", field="role")
        return self


class PasswordReset(BaseModel):
    """The new password, or nothing to have one generated (the body is optional)."""

    model_config = MODEL_CONFIG

    password: NewPassword | None = Field(
        None,
        description="The new password, under the registration policy. Leave it out to have a"
        " random one generated and returned once.",
    )


_Url = Annotated[
    str,
    Field(
        json_schema_extra={
            "format": "uri",
            "maxLength": WEBHOOK_URL_MAX_LENGTH,
            "examples": ["https://hooks.example.com/chatbot"],
        },
        description="http(s) URL whose host resolves only to public addresses, unless in"
        " WEBHOOK_ALLOWED_NETWORKS (400 naming `url` otherwise).",
    ),
]
# Any list: the event names are the service's to check (its message lists the choices).
_Events = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
            "description": "Events to receive (duplicates are dropped).",
        }
    ),
]
_Description = Annotated[
    str, Field(json_schema_extra={"maxLength": WEBHOOK_DESCRIPTION_MAX_LENGTH})
]


class WebhookUpdate(BaseModel):
    """Fields to change; absent or null ones stay as they are."""

    model_config = MODEL_CONFIG

    url: _Url | None = None
    events: _Events | None = None
    description: _Description | None = None
    active: bool | None = None


class WebhookCreate(WebhookUpdate):
    """The new webhook: `url` and `events` are required."""

    model_config = ConfigDict(**MODEL_CONFIG, json_schema_extra={"required": ["url", "events"]})

    # Checked once every field has its type, as a null counts as missing here.
    @model_validator(mode="after")
    def _required(self) -> Self:
        for name in ("url", "events"):
            if getattr(self, name) is None:
                raise api_error(f"{name} is required", field=name)
        return self


# --- query strings ------------------------------------------------------------------------------


class NoQuery(BaseModel):
    """No parameters: any one is refused."""

    model_config = MODEL_CONFIG


class UsageQuery(BaseModel):
    """The range of days and what to report."""

    model_config = MODEL_CONFIG

    since: str | None = Field(
        None,
        description=f"First day (UTC); default {usage.DEFAULT_RANGE_DAYS - 1} days before"
        f" `until`. Days run from {usage.FIRST_DAY} to {usage.LAST_DAY}.",
        json_schema_extra={"format": "date"},
    )
    until: str | None = Field(
        None,
        description=f"Last day, included; default today. At most {usage.MAX_RANGE_DAYS} days in"
        " all.",
        json_schema_extra={"format": "date"},
    )
    user_id: _UserId | None = Field(None, description="Only this user's usage.")
    top: Annotated[int, _whole(usage.TOP_USERS_MAX)] = Field(
        usage.TOP_USERS_DEFAULT, description="How many users `top_users` lists."
    )


class AuditQuery(BaseModel):
    """Filters of the audit log, and the page."""

    model_config = MODEL_CONFIG

    action: _Filter | None = Field(
        None,
        description="An action (`admin.role_changed`), or a prefix ending in `.*` (`auth.*`).",
    )
    actor_id: _ActorId | None = Field(None, description="Events of this actor.")
    target_type: _Filter | None = Field(None, description="Events about this kind of object.")
    target_id: _Filter | None = Field(None, description="Events about this object.")
    since: str | None = Field(
        None,
        description="Events at or after this time: ISO 8601 with an offset, or a date (UTC).",
    )
    until: str | None = Field(None, description="Events before this time (same format).")
    cursor: _AuditEventId | None = Field(None, description=_CURSOR)
    limit: Annotated[int, _whole(audit.LIST_LIMIT_MAX)] = Field(
        audit.LIST_LIMIT_DEFAULT, description=_PAGE_SIZE
    )


class UserListQuery(BaseModel):
    """Filters of the user list, and the page."""

    model_config = MODEL_CONFIG

    q: Annotated[str, TextCheck(max_length=users_admin.SEARCH_MAX_LENGTH, strip=True)] | None = (
        Field(None, description="Text in the email address or display name, ignoring case.")
    )
    active: Annotated[bool, Flag()] | None = Field(None, description="Enabled or not.")
    role: str | None = Field(
        None, description="Only this role.", json_schema_extra={"enum": list(USER_ROLES)}
    )
    cursor: _UserId | None = Field(None, description=_CURSOR)
    limit: Annotated[int, _whole(users_admin.LIST_LIMIT_MAX)] = Field(
        users_admin.LIST_LIMIT_DEFAULT, description=_PAGE_SIZE
    )


class UserConversationsQuery(BaseModel):
    """A page of a user's conversations, optionally searched."""

    model_config = MODEL_CONFIG

    limit: Annotated[int, _whole(conversations.LIST_LIMIT_MAX)] = Field(
        conversations.LIST_LIMIT_DEFAULT, description=_PAGE_SIZE
    )
    cursor: str | None = Field(
        None,
        description="`next_cursor` of the previous page, unchanged.",
        json_schema_extra={"maxLength": conversations.CURSOR_MAX_LENGTH},
    )
    q: Annotated[str, TextCheck(max_length=conversations.SEARCH_MAX_LENGTH, strip=True)] | None = (
        Field(None, description="Only conversations whose title or a message contains this text.")
    )


class DeliveryListQuery(BaseModel):
    """Filters of a webhook's deliveries, and the page."""

    model_config = MODEL_CONFIG

    status: str | None = Field(
        None,
        description="Only deliveries in this status.",
        json_schema_extra={"enum": list(WEBHOOK_DELIVERY_STATUSES)},
    )
    event: str | None = Field(
        None,
        description="Only deliveries of this event.",
        json_schema_extra={"enum": [*WEBHOOK_EVENTS, PING_EVENT]},
    )
    limit: Annotated[int, _whole(DELIVERIES_PAGE_MAX)] = Field(
        DELIVERIES_PAGE_DEFAULT, description="Deliveries per page."
    )
    cursor: _DeliveryId | None = Field(None, description="The previous page's `next_cursor`.")


class ApiKeyListQuery(BaseModel):
    """Whose API keys to list."""

    model_config = MODEL_CONFIG

    user_id: _UserId | None = Field(None, description="Only this user's keys.")
