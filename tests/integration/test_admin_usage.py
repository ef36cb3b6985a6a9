"""Usage figures of the admin API match the messages the test sends through the chat API.

The replies come from the fake OpenAI-compatible server (a primary model, a cache hit, a
fallback) and from the built-in offline model; every expected figure is computed from the
replies the chat API returned, not from the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.assertions import assert_names_field
from tests.integration.generation_support import messages_url, new_conversation
from webapp.extensions import db

pytestmark = pytest.mark.integration

USAGE = "/api/v1/admin/usage"


def send(client, tokens, conversation_id: int, content: str) -> dict:
    response = client.post(
        messages_url(conversation_id), json={"content": content}, headers=tokens.headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["reply"]


def utc_day(timestamp: str) -> date:
    return datetime.fromisoformat(timestamp).astimezone(UTC).date()


def percentile_cont(values: list[int], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def traffic(app, client, chat, auth, fake_openai):
    """Send the test's messages; return ``[(user email, reply, day)]`` and the admin."""
    alice = auth.signup("alice@example.com")
    bob = auth.signup("bob@example.com")
    carol = auth.signup("carol@example.com")
    admin = auth.admin()
    fake_openai.configure("chat-model", tokens=5)
    fake_openai.configure("backup-model", tokens=3)
    primary = chat().test_client()
    failing = chat(LLM_MODEL="error500", LLM_FALLBACK_MODEL="backup-model").test_client()

    sent = []
    earlier = new_conversation(primary, alice)
    sent += [("alice@example.com", send(primary, alice, earlier, text)) for text in ("Hi", "More")]
    # The same first message in a new conversation: answered from the cache.
    later = new_conversation(primary, alice)
    sent.append(("alice@example.com", send(primary, alice, later, "Hi")))
    sent.append(("bob@example.com", send(failing, bob, new_conversation(failing, bob), "Help")))
    # The app of the `client` fixture answers with the built-in offline model.
    offline_reply = send(client, carol, new_conversation(client, carol), "Offline please")
    sent.append(("carol@example.com", offline_reply))

    # The first conversation happened the day before.
    with app.app_context():
        db.session.execute(
            text(
                "UPDATE messages SET created_at = created_at - interval '1 day'"
                " WHERE conversation_id = :id"
            ),
            {"id": earlier},
        )
        db.session.commit()
        db.session.remove()
    dated = []
    for email, reply in sent:
        day = utc_day(reply["created_at"])
        if reply["conversation_id"] == earlier:
            day -= timedelta(days=1)
        dated.append((email, reply, day))

    assert [r["cached"] for _, r, _ in dated] == [False, False, True, False, False]
    assert [r["fallback"] for _, r, _ in dated] == [False, False, False, True, False]
    assert [r["model"] for _, r, _ in dated][3:] == ["backup-model", "offline"]
    return dated, admin, {"alice": alice, "bob": bob, "carol": carol}


# What a day or a user row counts, and what a model row counts.
ACTIVITY = ("messages", "replies", "tokens_in", "tokens_out")
MODEL_FIGURES = ("replies", "tokens_in", "tokens_out", "cached", "fallback")


def tally(dated, group: Callable[[str, dict, date], Any], figures: tuple[str, ...]) -> dict:
    """Return what the report should show per group: each reply is one message and one reply,
    and adds its tokens and its cached/fallback flags."""
    expected: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(figures, 0))
    for email, reply, day in dated:
        row = expected[group(email, reply, day)]
        for name in figures:
            row[name] += 1 if name in ("messages", "replies") else reply[name]
    return dict(expected)


def pick(row: dict, figures: tuple[str, ...]) -> dict:
    """Return the named figures of a report row."""
    return {name: row[name] for name in figures}


def _range(dated) -> str:
    days = [day for _, _, day in dated]
    return f"since={min(days).isoformat()}&until={max(days).isoformat()}"


def test_totals_days_models_and_users_match_what_was_sent(client, traffic):
    dated, admin, _ = traffic
    response = client.get(f"{USAGE}?{_range(dated)}", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    replies = [reply for _, reply, _ in dated]

    totals = report["totals"]
    assert (totals["messages"], totals["replies"], totals["failed_replies"]) == (5, 5, 0)
    assert totals["tokens_in"] == sum(r["tokens_in"] for r in replies)
    assert totals["tokens_out"] == sum(r["tokens_out"] for r in replies)
    assert totals["cache_hit_rate"] == 0.2
    assert totals["fallback_rate"] == 0.2
    produced = [r["latency_ms"] for r in replies if not r["cached"]]
    assert totals["latency_p50_ms"] == round(percentile_cont(produced, 0.5), 1)
    assert totals["latency_p95_ms"] == round(percentile_cont(produced, 0.95), 1)
    # The quota counted every reply a model produced, on the day it was produced (today).
    assert totals["quota_tokens"] == sum(
        r["tokens_in"] + r["tokens_out"] for r in replies if not r["cached"]
    )

    expected_days = tally(dated, lambda _, __, day: day, ACTIVITY)
    got_days = {date.fromisoformat(d["day"]): pick(d, ACTIVITY) for d in report["days"]}
    assert len(expected_days) == 2
    assert got_days == expected_days

    expected_models = tally(dated, lambda _, reply, __: reply["model"], MODEL_FIGURES)
    assert {m["model"]: pick(m, MODEL_FIGURES) for m in report["models"]} == expected_models
    # No model of the catalogue has a price: no cost.
    assert [m["cost"] for m in report["models"]] == [None] * len(expected_models)
    assert set(expected_models) == {"chat-model", "backup-model", "offline"}

    expected_users = tally(dated, lambda email, _, __: email, ACTIVITY)
    top = report["top_users"]
    assert {u["email"]: pick(u, ACTIVITY) for u in top} == expected_users
    spent = [u["tokens_in"] + u["tokens_out"] for u in top]
    assert spent == sorted(spent, reverse=True)


def test_one_user_and_one_day(client, traffic):
    dated, admin, users = traffic
    alice_id = users["alice"].user["id"]
    today = max(day for _, _, day in dated)

    report = client.get(
        f"{USAGE}?{_range(dated)}&user_id={alice_id}", headers=admin.headers
    ).get_json()
    alice_replies = [r for email, r, _ in dated if email == "alice@example.com"]
    assert report["user_id"] == alice_id
    assert (report["totals"]["messages"], report["totals"]["replies"]) == (3, 3)
    assert report["totals"]["tokens_out"] == sum(r["tokens_out"] for r in alice_replies)
    assert [u["email"] for u in report["top_users"]] == ["alice@example.com"]

    only_today = client.get(
        f"{USAGE}?since={today.isoformat()}&until={today.isoformat()}", headers=admin.headers
    ).get_json()
    todays = [r for _, r, day in dated if day == today]
    assert only_today["totals"]["messages"] == len(todays) == 3
    assert only_today["totals"]["tokens_in"] == sum(r["tokens_in"] for r in todays)
    assert [d["day"] for d in only_today["days"]] == [today.isoformat()]


def test_the_default_range_is_the_last_30_days(client, auth):
    admin = auth.admin()
    report = client.get(USAGE, headers=admin.headers).get_json()
    until = date.fromisoformat(report["until"])
    assert abs((datetime.now(UTC).date() - until).days) <= 1
    assert (until - date.fromisoformat(report["since"])).days == 29
    assert report["totals"]["messages"] == 0
    assert report["totals"]["cache_hit_rate"] is None
    assert report["totals"]["latency_p50_ms"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2026-02-30", "since"),
        ("until=26-01-01", "until"),
        ("since=2026-02-01&until=2026-01-01", "since"),
        ("since=2024-01-01&until=2025-01-01", "since"),
        ("user_id=0", "user_id"),
        ("top=101", "top"),
        ("group=model", "group"),
        # Days past the calendar's ends (the range would run off them).
        ("until=9999-12-31", "until"),
        ("until=0001-01-05", "until"),
        ("since=0001-01-01&until=0001-01-02", "until"),
        ("since=9999-12-31&until=9999-12-31", "until"),
    ],
)
def test_bad_ranges_are_refused_naming_the_parameter(client, auth, query, field):
    admin = auth.admin()
    assert_names_field(client.get(f"{USAGE}?{query}", headers=admin.headers), field)


def test_a_year_is_accepted(client, auth):
    admin = auth.admin()
    response = client.get(f"{USAGE}?since=2025-01-01&until=2025-12-31", headers=admin.headers)
    assert response.status_code == 200
