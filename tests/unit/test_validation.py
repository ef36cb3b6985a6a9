"""Input checks name the field at fault."""

from __future__ import annotations

import pytest

from webapp.errors import ValidationError
from webapp.services.accounts import normalize_email
from webapp.validation import bounded_int, check_text


def field_of(call, *args, **kwargs) -> str | None:
    with pytest.raises(ValidationError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value.field


@pytest.mark.parametrize("value", ["", "   ", "\n\t", "x" * 11, "a\x00b", "\udc80"], ids=repr)
def test_check_text_rejects(value):
    assert field_of(check_text, value, "content", min_length=1, max_length=10) == "content"


@pytest.mark.parametrize("value", ["x", " x ", "x" * 10, "é" * 10, "😀"])
def test_check_text_accepts(value):
    assert check_text(value, "content", min_length=1, max_length=10) == value


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.co.uk ", "bob@example.co.uk"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    ],
)
def test_normalize_email(raw, normalized):
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "@example.com",
        "a@b",
        "a@b.",
        "a b@example.com",
        "a@@example.com",
        "a@exa mple.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_normalize_email_rejects(raw):
    assert field_of(normalize_email, raw) == "email"


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("007", 7), ("100", 100)])
def test_bounded_int_accepts(text, number):
    assert bounded_int(text, "limit", minimum=1, maximum=100) == number


@pytest.mark.parametrize(
    "text", ["", "0", "101", "-1", "+5", " 5", "5 ", "1.5", "1e2", "1_0", "\u0665", "9" * 30]
)
def test_bounded_int_rejects(text):
    assert field_of(bounded_int, text, "limit", minimum=1, maximum=100) == "limit"
