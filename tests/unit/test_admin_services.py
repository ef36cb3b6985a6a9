"""The admin console's input rules, without I/O: date ranges, audit times, detail redaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from webapp.errors import ValidationError
from webapp.services import audit, usage

TODAY = date(2026, 3, 15)


def test_the_default_range_is_30_days_up_to_today():
    days = usage.parse_range(None, None, today=TODAY)
    assert (days.since, days.until) == (date(2026, 2, 14), TODAY)
    assert days.start == datetime(2026, 2, 14, tzinfo=UTC)
    assert days.end == datetime(2026, 3, 16, tzinfo=UTC)


def test_since_alone_ends_today_and_until_alone_looks_back():
    assert usage.parse_range("2026-03-01", None, today=TODAY).until == TODAY
    assert usage.parse_range(None, "2026-01-31", today=TODAY).since == date(2026, 1, 2)


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("2026-3-1", None, "since"),
        ("20260301", None, "since"),
        (None, "2026-02-29", "until"),
        ("2026-03-02", "2026-03-01", "since"),
        ("2025-03-14", "2026-03-15", "since"),  # 367 days
    ],
)
def test_bad_ranges_name_the_parameter(since, until, field):
    with pytest.raises(ValidationError) as raised:
        usage.parse_range(since, until, today=TODAY)
    assert raised.value.field == field


def test_a_range_of_366_days_is_the_longest():
    days = usage.parse_range("2025-03-15", "2026-03-15", today=TODAY)
    assert (days.until - days.since).days + 1 == usage.MAX_RANGE_DAYS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_audit_times_need_an_offset_or_are_utc_dates(text, expected):
    assert audit.parse_instant(text, "since") == expected


@pytest.mark.parametrize("text", ["2026-01-31T12:00:00", "yesterday", "", "2" * 100])
def test_audit_times_without_offset_are_refused(text):
    with pytest.raises(ValidationError) as raised:
        audit.parse_instant(text, "until")
    assert raised.value.field == "until"


def test_details_redaction_is_recursive_and_keeps_the_rest():
    details = {
        "email": "a@example.com",
        "new_password": "x",
        "headers": {"Authorization": "Bearer y", "Accept": "json"},
        "api_key": "z",
        "count": 3,
    }
    assert audit.redact(details) == {
        "email": "a@example.com",
        "new_password": "[redacted]",
        "headers": {"Authorization": "[redacted]", "Accept": "json"},
        "api_key": "[redacted]",
        "count": 3,
    }
    assert audit.redact(None) == {}


def test_every_action_is_a_dotted_name_that_fits_the_column():
    for action in audit.ACTIONS:
        prefix, _, name = action.partition(".")
        assert prefix in ("auth", "admin", "cli", "api_key")
        assert name
        assert len(action) <= 64
