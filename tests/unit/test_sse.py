"""Server-Sent Events framing of a streamed reply."""

from __future__ import annotations

import json

from flask import Flask

from webapp.bot import Done, Token
from webapp.chat.sse import SSE_HEADERS, format_event, reply_event_stream
from webapp.errors import UpstreamError


def test_format_event_puts_json_on_one_data_line():
    frame = format_event("token", {"text": "two\nlines é"}, 7)
    assert frame == 'id: 7\nevent: token\ndata: {"text":"two\\nlines é"}\n\n'
    assert json.loads(frame.split("data: ", 1)[1]) == {"text": "two\nlines é"}


def _stream(events) -> tuple[dict, list[tuple[str, str, dict]]]:
    app = Flask(__name__)
    with app.test_request_context():
        response = reply_event_stream({"id": 1, "role": "user"}, events)
        body = b"".join(response.iter_encoded()).decode()
        headers = dict(response.headers)
    frames = []
    for block in filter(None, body.split("\n\n")):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        frames.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return headers, frames


def test_stream_sends_message_tokens_and_done_with_increasing_ids():
    headers, frames = _stream(
        iter([Token("Hel"), Token("lo"), Done({"id": 2, "content": "Hello"})])
    )
    assert headers["Content-Type"].startswith("text/event-stream")
    for name, value in SSE_HEADERS.items():
        assert headers[name] == value
    assert frames == [
        ("1", "message", {"id": 1, "role": "user"}),
        ("2", "token", {"text": "Hel"}),
        ("3", "token", {"text": "lo"}),
        ("4", "done", {"id": 2, "content": "Hello"}),
    ]


def test_api_error_becomes_an_error_event():
    def events():
        yield Token("par")
        raise UpstreamError("The model failed.")

    _, frames = _stream(events())
    assert frames[-1] == (
        "3",
        "error",
        {"error": {"code": "upstream_error", "message": "The model failed."}},
    )


def test_unexpected_error_becomes_an_internal_error_event_without_details():
    def events():
        raise KeyError("internal detail")
        yield  # pragma: no cover - makes this a generator

    _, frames = _stream(events())
    assert [f[1] for f in frames] == ["message", "error"]
    assert frames[-1][2]["error"]["code"] == "internal_error"
    assert "internal detail" not in json.dumps(frames[-1][2])
