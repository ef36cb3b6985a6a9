"""Input checks name the field at fault."""

from __future__ import annotations

import pytest

from webapp.errors import ValidationError
from webapp.services.accounts import normalize_email
from webapp.validation import (
    bounded_int,
    check_text,
    optional_string,
    query_parameters,
    reject_unknown_fields,
    required_string,
)


def field_of(call, *args, **kwargs) -> str | None:
    with pytest.raises(ValidationError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value.field


def test_reject_unknown_fields_names_the_first_unknown_one():
    reject_unknown_fields({"email": 1}, ("email", "password"))
    assert field_of(reject_unknown_fields, {"role": 1, "is_admin": 1, "email": 1}, ("email",)) == (
        "is_admin"
    )


def test_required_string():
    assert required_string({"name": " x "}, "name") == " x "
    assert field_of(required_string, {}, "name") == "name"
    assert field_of(required_string, {"name": None}, "name") == "name"
    assert field_of(required_string, {"name": 1}, "name") == "name"
    assert field_of(required_string, {"name": ["x"]}, "name") == "name"


def test_optional_string():
    assert optional_string({}, "title") is None
    assert optional_string({"title": None}, "title") is None
    assert optional_string({"title": "t"}, "title") == "t"
    assert field_of(optional_string, {"title": False}, "title") == "title"


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


def test_query_parameters_returns_single_values():
    params = {"limit": ["5"], "q": ["x"]}
    assert query_parameters(params, ("limit", "cursor", "q")) == {"limit": "5", "q": "x"}
    assert query_parameters({}, ("limit",)) == {}


def test_query_parameters_refuses_unknown_and_repeated_ones():
    assert field_of(query_parameters, {"page": ["2"], "limit": ["1"]}, ("limit",)) == "page"
    assert field_of(query_parameters, {"limit": ["1", "2"]}, ("limit",)) == "limit"


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("007", 7), ("100", 100)])
def test_bounded_int_accepts(text, number):
    assert bounded_int(text, "limit", minimum=1, maximum=100) == number


@pytest.mark.parametrize(
    "text", ["", "0", "101", "-1", "+5", " 5", "5 ", "1.5", "1e2", "1_0", "\u0665", "9" * 30]
)
def test_bounded_int_rejects(text):
    assert field_of(bounded_int, text, "limit", minimum=1, maximum=100) == "limit"
