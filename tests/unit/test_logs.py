"""JSON log lines with secrets redacted (webapp.logs), without I/O."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from webapp.logs import JsonFormatter, configure_logging, gunicorn_logconfig, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9"
    ".c2lnbmF0dXJlLXZhbHVlLWhlcmU"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token was {JWT}", JWT),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("openai key sk-proj-0123456789abcdef rejected", "sk-proj-0123456789abcdef"),
        ("connecting to postgresql://chatbot:pa55word@db:5432/chatbot", "pa55word"),
        ("redis://:r3dis-pass@cache:6379/0 down", "r3dis-pass"),
        ('{"email": "a@b.c", "password": "hunter2 plus"}', "hunter2"),
        ("password=hunter22&email=x", "hunter22"),
        ("GET /api/v1/auth/me?access_token=qwerty123 200", "qwerty123"),
        ("new_password: Sup3rSecret", "Sup3rSecret"),
        ("api_key=abcd1234", "abcd1234"),
        ("'secret': 'xyzzy42'", "xyzzy42"),
    ],
)
def test_redact_removes_secrets(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_ordinary_text():
    text = "user 42 logged in from 203.0.113.7; conversation 7 renamed to 'tokenizer notes'"
    assert redact(text) == text


def test_configured_secret_values_are_removed_wherever_they_appear():
    configure_logging(
        "auth",
        "INFO",
        secrets=("an-app-secret-key-of-some-length", "postgresql://u:dbpassw0rd@h/d", ""),
    )
    assert redact("key an-app-secret-key-of-some-length, pw dbpassw0rd") == (
        "key [redacted], pw [redacted]"
    )


def _record(message: str, *args, name: str = "webapp.test", exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_record_is_one_json_line_with_its_fields():
    line = JsonFormatter("chat").format(_record("reply %s failed: %s", 7, f"Bearer {JWT}"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "webapp.test"
    assert entry["service"] == "chat"
    assert entry["message"] == "reply 7 failed: Bearer [redacted]"
    assert entry["ts"].endswith("+00:00")
    assert "request_id" not in entry


def test_exception_text_is_redacted_too():
    try:
        raise RuntimeError(f"upstream refused key sk-live-abcdefghijklmnop and {JWT}")
    except RuntimeError:
        record = _record("call failed", exc_info=sys.exc_info())
    entry = json.loads(JsonFormatter("chat").format(record))
    assert "RuntimeError" in entry["exception"]
    assert "sk-live-abcdefghijklmnop" not in entry["exception"]
    assert JWT not in entry["exception"]


def test_gunicorn_access_lines_become_fields():
    atoms = {
        "m": "GET",
        "U": "/api/v1/auth/me",
        "q": f"access_token={JWT}&x=1",
        "s": "200",
        "D": "1534",
        "h": "10.0.0.1",
        "B": "42",
        "{x-request-id}o": "req-123",
    }
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", (), None)
    record.args = atoms
    entry = json.loads(JsonFormatter("auth").format(record))
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/auth/me?access_token=[redacted]&x=1"
    assert (entry["status"], entry["duration_ms"], entry["bytes"]) == (200, 1.5, 42)
    assert entry["request_id"] == "req-123"
    assert entry["remote_addr"] == "10.0.0.1"
    assert JWT not in json.dumps(entry)


def test_the_gunicorn_configuration_is_valid_for_dictconfig():
    from logging.config import dictConfig

    config = gunicorn_logconfig("admin")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        dictConfig(config)
        handlers = logging.getLogger("gunicorn.access").handlers
        assert len(handlers) == 1
        assert isinstance(handlers[0].formatter, JsonFormatter)
    finally:
        for logger_name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(logger_name).handlers.clear()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
