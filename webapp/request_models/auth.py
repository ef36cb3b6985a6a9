"""Request models of the auth service (``/api/v1/auth``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from webapp.models import DISPLAY_NAME_MAX_LENGTH
from webapp.request_models.fields import Instant, MinLength, TextCheck
from webapp.request_models.parsing import MODEL_CONFIG
from webapp.services import api_keys
from webapp.services.accounts import (
    LOGIN_INPUT_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
)

__all__ = ["ApiKeyCreate", "LoginRequest", "PasswordChange", "ProfileUpdate", "RegisterRequest"]

NewPassword = Annotated[
    str,
    TextCheck(max_length=PASSWORD_MAX_LENGTH),
    MinLength(PASSWORD_MIN_LENGTH),
    Field(
        json_schema_extra={"format": "password"},
        description=f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters mixing at least"
        " two kinds (lowercase, uppercase, digits, others), and not the email address.",
    ),
]
"""A new password: its length here, the rest of the policy in ``accounts.check_password_policy``."""

# What was typed at sign-in: storable text of a sane length; whether it matches is the service's.
_Typed = Annotated[str, TextCheck(max_length=LOGIN_INPUT_MAX_LENGTH)]
DisplayName = Annotated[str, TextCheck(min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH)]


class RegisterRequest(BaseModel):
    """Any other field (`role`, `is_admin`...) is refused with 400."""

    model_config = MODEL_CONFIG

    email: Annotated[
        str,
        TextCheck(min_length=1, max_length=LOGIN_INPUT_MAX_LENGTH),
        Field(json_schema_extra={"format": "email"}),
    ]
    password: NewPassword
    display_name: DisplayName | None = Field(
        None, description="Defaults to the part of the email before the @."
    )


class LoginRequest(BaseModel):
    """The credentials."""

    model_config = MODEL_CONFIG

    email: Annotated[_Typed, Field(json_schema_extra={"format": "email"})]
    password: Annotated[_Typed, Field(json_schema_extra={"format": "password"})]


class ProfileUpdate(BaseModel):
    """The fields to change; an absent one stays as it is."""

    model_config = MODEL_CONFIG

    # Optional but not nullable: null is "display_name is required", as it always was. None
    # stands for "not sent" only as the default, which pydantic does not validate.
    display_name: DisplayName = None  # type: ignore[assignment]


class PasswordChange(BaseModel):
    """The current password and the new one."""

    model_config = MODEL_CONFIG

    current_password: Annotated[_Typed, Field(json_schema_extra={"format": "password"})]
    new_password: NewPassword


class ApiKeyCreate(BaseModel):
    """The new API key's name and, optionally, when it stops working."""

    model_config = MODEL_CONFIG

    name: Annotated[
        str,
        TextCheck(min_length=1, max_length=api_keys.NAME_MAX_LENGTH, strip=True),
        Field(description="What the key is for (trimmed), shown in the list of keys."),
    ]
    expires_at: Annotated[datetime, Instant()] | None = Field(
        None, description="When the key stops working (in the future); null or absent: never."
    )
