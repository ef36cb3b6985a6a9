"""The /v1 completion request model, and the per-request settings applied to a model selection."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from webapp.errors import ValidationError
from webapp.llm.offline import OfflineChatModel
from webapp.llm.selection import ModelSelection, NamedModel
from webapp.openai_api.completions import (
    CompletionOptions,
    chunk,
    completion_body,
    with_options,
)
from webapp.request_models.openai_api import parse_completion_request

QUESTION = [{"role": "user", "content": "Hi"}]


def parse(**body):
    return parse_completion_request({"model": "m", "messages": QUESTION, **body})


def test_a_minimal_request():
    request = parse()
    assert request.model == "m"
    assert request.stream is False
    assert request.reply_token_limit is None
    assert request.stop_sequences == ()
    assert request.include_usage is False


def test_text_parts_are_joined_and_developer_is_a_system_role():
    request = parse(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    )
    assert [m.role for m in request.messages] == ["developer", "user"]
    assert request.messages[1].text == "ab"


def test_settings_under_either_name():
    assert parse(max_completion_tokens=7).reply_token_limit == 7
    assert parse(max_tokens=9).reply_token_limit == 9
    assert parse(stop="END").stop_sequences == ("END",)
    assert parse(stop=["a", "b"]).stop_sequences == ("a", "b")
    assert parse(stream=True, stream_options={"include_usage": True}).include_usage
    assert parse(temperature=1).temperature == 1.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": []}, "tools"),
        ({"model": ""}, "model"),
        ({"model": 3}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        ({"messages": [*QUESTION, {"role": "assistant", "content": "x"}]}, "messages[1].role"),
        ({"messages": [{"role": "user", "content": "x" * 8001}]}, "messages[0].content"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 5, "max_completion_tokens": 5}, "max_completion_tokens"),
        ({"stop": ["a"] * 5}, "stop"),
        ({"stop": ""}, "stop"),
        ({"n": 2}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"x": 1}}, "stream_options.x"),
        ({"user": "u" * 257}, "user"),
    ],
)
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(ValidationError) as raised:
        parse(**body)
    assert raised.value.field == param
    assert raised.value.message


def test_a_missing_model_is_named():
    with pytest.raises(ValidationError) as raised:
        parse_completion_request({"messages": QUESTION})
    assert raised.value.field == "model"


def _selection() -> ModelSelection:
    remote = ChatOpenAI(model="up", api_key="x", base_url="http://127.0.0.1:1/v1")
    return ModelSelection(
        models=(NamedModel("remote", remote), NamedModel("offline", OfflineChatModel())),
        cache_params={"model": "remote", "max_tokens": 64},
    )


def test_no_options_leave_the_selection_as_it_is():
    selection = _selection()
    assert with_options(selection, CompletionOptions()) is selection


def test_options_apply_to_copies_of_the_openai_models_and_join_the_cache_key():
    selection = _selection()
    applied = with_options(selection, CompletionOptions(top_p=0.5, stop=("END",)))
    remote, offline = applied.models
    assert remote.name == "remote"
    assert remote.model is not selection.models[0].model
    assert remote.model.stop == ["END"]
    assert remote.model.model_kwargs == {"top_p": 0.5}
    # The shared model is unchanged; the offline model takes no such settings.
    assert selection.models[0].model.stop is None
    assert offline.model is selection.models[1].model
    assert applied.cache_params == {
        "model": "remote",
        "max_tokens": 64,
        "top_p": 0.5,
        "stop": ["END"],
    }


def test_the_shapes_of_a_completion_and_its_chunks():
    body = completion_body("chatcmpl-1", 5, "m", "hello", 3, 2)
    assert body["choices"][0]["message"]["content"] == "hello"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    piece = chunk("chatcmpl-1", 5, "m", {"content": "he"})
    assert piece["choices"][0]["delta"] == {"content": "he"}
    assert "usage" not in piece
    last = chunk("chatcmpl-1", 5, "m", None, with_usage=True, usage_value={"total_tokens": 1})
    assert last["choices"] == []
    assert last["usage"] == {"total_tokens": 1}
