"""The password policy (no I/O): length, two kinds of characters, not the email address."""

from __future__ import annotations

import pytest

from webapp.errors import ValidationError
from webapp.services.accounts import PASSWORD_MAX_LENGTH, check_password_policy

EMAIL = "alice.smith@example.com"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "Tr0ub4dor&3",
        "abcdefghi1",
        "ALLCAPS WITH SPACE",
        "пароль-пароль",
        "x" * (PASSWORD_MAX_LENGTH - 1) + "1",
    ],
)
def test_sensible_passwords_pass(password):
    assert check_password_policy(password, email=EMAIL) == password


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "at least 10"),
        ("Short 1", "at least 10"),
        ("x" * (PASSWORD_MAX_LENGTH + 1), "at most"),
        ("aaaaaaaaaaaaaaa", "two kinds"),
        ("0123456789", "two kinds"),
        ("QWERTYUIOPAS", "two kinds"),
        ("-._~!@#$%^&*", "two kinds"),
        ("correcthorsebatterystaple", "two kinds"),
        (EMAIL, "email"),
        (EMAIL.upper(), "email"),
        (f"  {EMAIL}  ", "email"),
        ("alice.smith", "email"),
        ("pass\x00word 1", "NUL"),
    ],
)
def test_weak_passwords_are_refused_naming_the_rule(password, message):
    with pytest.raises(ValidationError) as excinfo:
        check_password_policy(password, email=EMAIL)
    assert excinfo.value.field == "password"
    assert message in excinfo.value.message


def test_the_error_names_the_field_it_is_asked_to():
    with pytest.raises(ValidationError) as excinfo:
        check_password_policy("short", email=EMAIL, field="new_password")
    assert excinfo.value.field == "new_password"
    assert excinfo.value.message.startswith("new_password ")
