"""Pure parts of the conversation service: titles, cursors, search patterns, export names."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from webapp.errors import ValidationError
from webapp.models import Conversation
from webapp.services.conversations import (
    AUTO_TITLE_MAX_LENGTH,
    check_export_format,
    check_title,
    decode_cursor,
    derive_title,
    encode_cursor,
    export_conversation,
    like_pattern,
)

# --- derived titles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("Hello", "Hello"),
        ("  Plan a trip to Lisbon \n", "Plan a trip to Lisbon"),
        # One line: line breaks and tabs between words become single spaces.
        ("Line one\n\nline two\tand three", "Line one line two and three"),
        ("bell\x07 and\x1b escape", "bell and escape"),
        ("para\u2028graph", "para graph"),
        ("x" * 60, "x" * 60),
    ],
)
def test_derive_title_keeps_short_text_whole(content, title):
    assert derive_title(content) == title


def test_derive_title_cuts_long_text_at_a_word_boundary():
    content = "Could you explain how keyset pagination differs from offset pagination in SQL?"
    title = derive_title(content)
    assert title == "Could you explain how keyset pagination differs from offset…"
    assert len(title) <= AUTO_TITLE_MAX_LENGTH
    # The cut falls between words, never inside one.
    assert content.startswith(title.removesuffix("…"))
    assert content[len(title) - 1] == " "


def test_derive_title_drops_punctuation_left_dangling_by_the_cut():
    content = "First, second, third, fourth, fifth, sixth, seventh, eighth, ninth, tenth"
    title = derive_title(content)
    assert title is not None
    assert not title.removesuffix("…").endswith(",")
    assert title.endswith("…")


def test_derive_title_cuts_a_giant_word_at_the_limit():
    url = "https://example.com/" + "a" * 100
    title = derive_title(f"{url} what is this?")
    assert title == url[: AUTO_TITLE_MAX_LENGTH - 1] + "…"


def test_derive_title_prefers_the_limit_to_a_very_short_first_word():
    content = "Hi " + "b" * 100
    title = derive_title(content)
    assert title == ("Hi " + "b" * 100)[: AUTO_TITLE_MAX_LENGTH - 1] + "…"


def test_derive_title_of_long_punctuation_keeps_it():
    assert derive_title("-" * 100) == "-" * (AUTO_TITLE_MAX_LENGTH - 1) + "…"


@pytest.mark.parametrize("content", ["", "   ", "\n\t\n", "\x07\x1b"])
def test_derive_title_of_nothing_printable_is_none(content):
    assert derive_title(content) is None


# --- titles from clients ----------------------------------------------------------------------


def test_check_title_trims():
    assert check_title("  Trip  ") == "Trip"
    # Trimming comes first: 200 characters of title with spaces around them fit.
    assert check_title(" " + "x" * 200 + " ") == "x" * 200


@pytest.mark.parametrize(
    "title", ["", "   ", "x" * 201, "two\nlines", "tab\there", "nul\x00", "sep\u2028x"]
)
def test_check_title_rejects(title):
    with pytest.raises(ValidationError) as excinfo:
        check_title(title)
    assert excinfo.value.field == "title"


# --- cursors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "updated_at",
    [
        datetime(2025, 11, 25, 16, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 11, 25, 16, 0, tzinfo=UTC),
        # Another zone: the cursor stands for the same instant.
        datetime(2025, 11, 25, 17, 0, 0, 1, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_cursor_round_trips(updated_at):
    cursor = encode_cursor(updated_at, 42)
    assert cursor.isascii()
    assert "=" not in cursor  # no padding to percent-encode in a URL
    decoded_at, conversation_id = decode_cursor(cursor)
    assert decoded_at == updated_at  # the same instant, to the microsecond
    assert decoded_at.tzinfo is not None
    assert conversation_id == 42


def _raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "!!!!",
        "x" * 201,
        _raw_cursor(["2025-11-25T16:00:00+00:00"]),
        _raw_cursor(["2025-11-25T16:00:00+00:00", 1, 2]),
        _raw_cursor(["2025-11-25T16:00:00", 1]),  # no time zone
        _raw_cursor(["yesterday", 1]),
        _raw_cursor(["2025-11-25T16:00:00+00:00", "1"]),
        _raw_cursor(["2025-11-25T16:00:00+00:00", True]),
        _raw_cursor(["2025-11-25T16:00:00+00:00", 0]),
        _raw_cursor(["2025-11-25T16:00:00+00:00", 2**31]),
        _raw_cursor({"a": 1, "b": 2}),
        _raw_cursor(7),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_decode_cursor_rejects_anything_it_did_not_make(cursor):
    with pytest.raises(ValidationError) as excinfo:
        decode_cursor(cursor)
    assert excinfo.value.field == "cursor"


# --- search patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("plain", "%plain%"),
        ("100%", "%100\\%%"),
        ("snake_case", "%snake\\_case%"),
        ("back\\slash", "%back\\\\slash%"),
        ("%_\\", "%\\%\\_\\\\%"),
    ],
)
def test_like_pattern_escapes_wildcards(text, pattern):
    assert like_pattern(text) == pattern


# --- export -----------------------------------------------------------------------------------

EXPORTED_AT = datetime(2025, 11, 25, 16, 0, tzinfo=UTC)


def _conversation(title: str | None) -> Conversation:
    return Conversation(id=12, user_id=1, title=title, created_at=EXPORTED_AT, messages=[])


@pytest.mark.parametrize(
    ("title", "filename"),
    [
        ("Trip planning", "conversation-12-trip-planning.md"),
        ('Café "quotes"; rm -rf /\r\nX-Evil: 1', "conversation-12-cafe-quotes-rm-rf-x-evil-1.md"),
        ("日本語", "conversation-12.md"),
        (None, "conversation-12.md"),
        ("a" * 80, "conversation-12-" + "a" * 50 + ".md"),
    ],
)
def test_export_filename_is_a_safe_slug(title, filename):
    conversation = _conversation(title)
    conversation.updated_at = EXPORTED_AT
    export = export_conversation(conversation, "md", exported_at=EXPORTED_AT)
    assert export.filename == filename


@pytest.mark.parametrize("export_format", ["", "JSON", "markdown", "pdf", "md "])
def test_check_export_format_rejects_unknown_formats(export_format):
    with pytest.raises(ValidationError) as excinfo:
        check_export_format(export_format)
    assert excinfo.value.field == "format"
