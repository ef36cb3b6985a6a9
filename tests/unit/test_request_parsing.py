"""Request models refuse what the hand-written checks refused, with the same messages and fields."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel

from webapp.errors import ValidationError
from webapp.request_models.fields import Flag, TextCheck, WholeNumber
from webapp.request_models.parsing import MODEL_CONFIG, check_body, check_query


class Credentials(BaseModel):
    model_config = MODEL_CONFIG

    email: str
    password: str


class Named(BaseModel):
    model_config = MODEL_CONFIG

    name: str


class Titled(BaseModel):
    model_config = MODEL_CONFIG

    title: str | None = None


class Page(BaseModel):
    model_config = MODEL_CONFIG

    limit: Annotated[int, WholeNumber(1, 100)] = 20
    cursor: str | None = None
    q: Annotated[str, TextCheck(max_length=10, strip=True)] | None = None
    active: Annotated[bool, Flag()] | None = None


def error_of(call, *args) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as excinfo:
        call(*args)
    return excinfo.value.field, excinfo.value.message


def test_an_unknown_field_is_named_first_in_sorted_order():
    check_body(Credentials, {"email": "a", "password": "b"})
    assert error_of(check_body, Credentials, {"role": 1, "is_admin": 1, "email": 1}) == (
        "is_admin",
        "Unknown field: is_admin",
    )


def test_a_required_string():
    assert check_body(Named, {"name": " x "}).name == " x "
    assert error_of(check_body, Named, {}) == ("name", "name is required")
    assert error_of(check_body, Named, {"name": None}) == ("name", "name is required")
    assert error_of(check_body, Named, {"name": 1}) == ("name", "name must be a string")
    assert error_of(check_body, Named, {"name": ["x"]}) == ("name", "name must be a string")


def test_an_optional_string():
    assert check_body(Titled, {}).title is None
    assert check_body(Titled, {"title": None}).title is None
    assert check_body(Titled, {"title": "t"}).title == "t"
    assert error_of(check_body, Titled, {"title": False}) == ("title", "title must be a string")


def test_query_parameters_are_single_values():
    page = check_query(Page, {"limit": ["5"], "q": ["x"], "active": ["false"]})
    assert (page.limit, page.cursor, page.q, page.active) == (5, None, "x", False)
    assert check_query(Page, {}).limit == 20


def test_unknown_and_repeated_query_parameters_are_refused():
    assert error_of(check_query, Page, {"page": ["2"], "limit": ["1", "2"]}) == (
        "page",
        "Unknown query parameter: page",
    )
    assert error_of(check_query, Page, {"limit": ["1", "2"]}) == (
        "limit",
        "limit must be given once",
    )


@pytest.mark.parametrize("text", ["0", "101", "+5", " 5", "1_0", "\u0665", "9" * 30])
def test_a_whole_number_parameter(text):
    assert error_of(check_query, Page, {"limit": [text]}) == (
        "limit",
        "limit must be a whole number from 1 to 100",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "q must not contain NUL characters"),
        ("\udc80", "q must be valid Unicode text"),
        ("x" * 11, "q must be at most 10 characters"),
    ],
)
def test_text_checks_keep_their_messages(value, message):
    assert error_of(check_query, Page, {"q": [value]}) == ("q", message)
    # Counted without the surrounding whitespace, as the service stores it.
    assert check_query(Page, {"q": ["  " + "x" * 10 + "  "]}).q is not None


def test_a_flag_parameter():
    assert error_of(check_query, Page, {"active": ["1"]}) == (
        "active",
        "active must be true or false",
    )
