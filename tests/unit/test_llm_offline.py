"""The offline model answers deterministically, labelled, streamed token by token."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from webapp.llm.offline import OFFLINE_LABEL, OfflineChatModel, split_tokens

CONVERSATION = [
    SystemMessage("Be brief."),
    HumanMessage("Hello there"),
    AIMessage("Hi! How can I help?"),
    HumanMessage("What is   the\ncapital of France?"),
]


def test_reply_is_labelled_and_echoes_the_latest_user_message() -> None:
    reply = OfflineChatModel().invoke(CONVERSATION)

    assert reply.text.startswith(OFFLINE_LABEL)
    assert '"What is the capital of France?"' in reply.text
    assert "turn 2" in reply.text
    assert "OPENAI_BASE_URL" in reply.text  # tells the operator how to get a real model
    assert reply.response_metadata["model_name"] == "offline"


def test_reply_is_deterministic_across_instances_and_calls() -> None:
    first = OfflineChatModel().invoke(CONVERSATION)
    second = OfflineChatModel().invoke(list(CONVERSATION))

    assert first.text == second.text
    assert first.usage_metadata == second.usage_metadata


def test_reply_changes_with_the_conversation() -> None:
    model = OfflineChatModel()
    longer = [*CONVERSATION, AIMessage("Paris."), HumanMessage("And of Spain?")]

    reply = model.invoke(longer)

    assert '"And of Spain?"' in reply.text
    assert "turn 3" in reply.text


def test_stream_yields_one_chunk_per_token_adding_up_to_the_reply() -> None:
    model = OfflineChatModel()

    chunks = list(model.stream(CONVERSATION))

    assert len(chunks) > 1
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == model.invoke(CONVERSATION).text
    assert [chunk.text for chunk in chunks] == split_tokens(model.invoke(CONVERSATION).text)


def test_usage_counts_input_and_streamed_output_tokens() -> None:
    model = OfflineChatModel()
    chunks = list(model.stream(CONVERSATION))
    aggregate = chunks[0]
    for chunk in chunks[1:]:
        aggregate += chunk

    usage = aggregate.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == len(chunks)
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage == model.invoke(CONVERSATION).usage_metadata
    assert aggregate.response_metadata["model_name"] == "offline"


def test_stop_sequence_cuts_the_reply() -> None:
    reply = OfflineChatModel().invoke(CONVERSATION, stop=["You said"])

    assert reply.text == f"{OFFLINE_LABEL} "


def test_empty_conversation_gets_a_labelled_reply() -> None:
    reply = OfflineChatModel().invoke([SystemMessage("Be brief.")])

    assert reply.text.startswith(OFFLINE_LABEL)


def test_split_tokens_keeps_every_character() -> None:
    text = "  two  spaces\tand\nlines "

    tokens = split_tokens(text)

    assert "".join(tokens) == text
    assert tokens == ["  ", "two  ", "spaces\t", "and\n", "lines "]


def test_model_type_and_default_pace() -> None:
    model = OfflineChatModel()

    assert model._llm_type == "offline"
    assert model.token_delay == 0.0
