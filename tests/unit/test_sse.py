"""Server-Sent Events framing of a streamed reply."""

from __future__ import annotations

import json

from flask import Flask

from webapp.chat.sse import KEEPALIVE, SSE_HEADERS, event_stream_response, format_event, json_data
from webapp.replies.stream import StreamEvent


def test_format_event_puts_json_on_one_data_line():
    frame = format_event("token", json_data({"text": "two\nlines é"}), 7)
    assert frame == 'id: 7\nevent: token\ndata: {"text":"two\\nlines é"}\n\n'
    assert json.loads(frame.split("data: ", 1)[1]) == {"text": "two\nlines é"}


def test_an_event_without_id_leaves_the_resume_point_alone():
    assert format_event("error", "{}", None) == "event: error\ndata: {}\n\n"


def _body(events) -> tuple[dict, str]:
    app = Flask(__name__)
    with app.test_request_context():
        response = event_stream_response(events, headers={"X-Reply-Id": "9"})
        body = b"".join(response.iter_encoded()).decode()
        headers = dict(response.headers)
    return headers, body


def test_events_keepalives_and_headers():
    headers, body = _body(
        iter(
            [
                StreamEvent(0, "message", '{"id":1}'),
                StreamEvent(1, "token", '{"text":"Hel"}'),
                None,
                StreamEvent(2, "done", '{"id":2}'),
            ]
        )
    )
    assert headers["Content-Type"].startswith("text/event-stream")
    for name, value in SSE_HEADERS.items():
        assert headers[name] == value
    assert headers["X-Reply-Id"] == "9"
    assert body == (
        'id: 0\nevent: message\ndata: {"id":1}\n\n'
        'id: 1\nevent: token\ndata: {"text":"Hel"}\n\n'
        f"{KEEPALIVE}"
        'id: 2\nevent: done\ndata: {"id":2}\n\n'
    )


def test_a_broken_stream_ends_with_an_error_event_without_id_or_details():
    def events():
        yield StreamEvent(1, "token", '{"text":"par"}')
        raise ConnectionError("redis detail")

    _, body = _body(events())
    last = body.split("\n\n")[-2]
    assert last.startswith("event: error\n")
    data = json.loads(last.split("data: ", 1)[1])
    assert data["error"]["code"] == "stream_interrupted"
    assert "redis detail" not in body
