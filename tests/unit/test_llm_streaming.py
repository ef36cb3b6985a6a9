"""The lean streaming path without a server: SSE parsing, the stream, the per-process clients."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from langchain_core.messages import HumanMessage

from webapp.llm.streaming import (
    CompletionStream,
    LeanChatOpenAI,
    ModelResponseError,
    _sse_data,
    model_http_client,
)


def sse(*payloads: object) -> bytes:
    """Return an event stream body: one data event per payload, then [DONE]."""
    events = [f"data: {json.dumps(payload)}\n\n" for payload in payloads]
    return ("".join(events) + "data: [DONE]\n\n").encode()


def chunk(content: str | None = None, **extra: object) -> dict[str, object]:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return {"model": "served-model", "choices": choices, **extra}


def test_a_completion_stream_yields_the_text_then_knows_usage_and_model() -> None:
    body = sse(
        chunk(""),
        chunk("Hello"),
        chunk(" world"),
        chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
    )
    stream = CompletionStream(httpx.Response(200, content=body))

    assert list(stream) == ["Hello", " world"]
    assert stream.usage == (5, 2)
    assert stream.model == "served-model"


def test_an_error_event_in_the_stream_raises() -> None:
    body = sse(chunk("Hel"), {"error": {"message": "overloaded", "type": "server_error"}})
    texts = iter(CompletionStream(httpx.Response(200, content=body)))

    assert next(texts) == "Hel"
    with pytest.raises(ModelResponseError, match="overloaded"):
        next(texts)


def test_sse_data_survives_any_split_of_the_bytes() -> None:
    body = (
        b": a comment\r\n"
        b'data: {"a": 1}\r\n\r\n'
        b"event: message\n"
        b"data: first line\n"
        b"data:second line\n\n"
        b"id: 7\n\n"
        b"data: [DONE]\n\n"
    )
    expected = [b'{"a": 1}', b"first line\nsecond line", b"[DONE]"]

    for size in (1, 2, 3, 7, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert list(_sse_data(iter(chunks))) == expected, size


def test_sse_data_drops_an_event_the_body_ends_in() -> None:
    assert list(_sse_data(iter([b"data: x\n\ndata: y\n"]))) == [b"x"]


def test_one_client_per_endpoint_and_process() -> None:
    client = model_http_client("http://127.0.0.1:9/v1", "sk-unit", 5.0)

    assert model_http_client("http://127.0.0.1:9/v1", "sk-unit", 5.0) is client
    assert model_http_client("http://127.0.0.1:9/v1", "sk-other", 5.0) is not client
    assert model_http_client("http://127.0.0.1:9/v1", "sk-unit", 6.0) is not client


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_share_its_parents_client() -> None:
    parent = model_http_client("http://127.0.0.1:9/v1", "sk-fork", 5.0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got a client of its own, then leave at once
        try:
            child = model_http_client("http://127.0.0.1:9/v1", "sk-fork", 5.0)
            same = model_http_client("http://127.0.0.1:9/v1", "sk-fork", 5.0)
            os.write(write_end, b"own" if child is not parent and same is child else b"shared")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 16)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)

    assert answer == b"own"
    assert model_http_client("http://127.0.0.1:9/v1", "sk-fork", 5.0) is parent


@pytest.mark.parametrize(
    ("options", "lean"),
    [
        ({}, True),
        ({"model": "o3-mini"}, False),  # langchain-openai renames its system role
        ({"use_responses_api": True}, False),
        ({"model_kwargs": {"custom_option": 1}}, False),
        ({"stop": ["\n"]}, False),
    ],
)
def test_models_the_lean_path_cannot_reproduce_stream_through_chat_openai(
    options: dict[str, object], lean: bool
) -> None:
    settings: dict[str, object] = {
        "model": "gpt-test",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-unit",
        "max_retries": 0,
        "timeout": 0.5,
    }
    model = LeanChatOpenAI(**(settings | options))  # type: ignore[arg-type]

    if lean:
        # The endpoint is closed: a lean model tries (and fails to connect); the others decline.
        with pytest.raises(Exception, match="onnect"):
            model.open_text_stream([HumanMessage("hi")])
    else:
        assert model.open_text_stream([HumanMessage("hi")]) is None
