"""trim_history keeps the latest user message (and a system prompt) within the token budget."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately

from webapp.bot.nodes import trim_history


def long_conversation(turns: int) -> list[BaseMessage]:
    """Return a conversation of `turns` user/assistant exchanges plus a new user message."""
    messages: list[BaseMessage] = []
    for turn in range(turns):
        messages.append(HumanMessage(f"question {turn} " + "lorem ipsum " * 10))
        messages.append(AIMessage(f"answer {turn} " + "dolor sit amet " * 10))
    messages.append(HumanMessage("the latest question"))
    return messages


def test_short_history_is_kept_whole() -> None:
    messages = long_conversation(2)

    assert trim_history(messages, 10_000) == messages


def test_long_history_keeps_the_latest_messages_within_budget() -> None:
    messages = long_conversation(20)
    budget = 200

    kept = trim_history(messages, budget)

    assert len(kept) < len(messages)
    assert kept[-1] is messages[-1]
    assert kept == messages[-len(kept) :]
    assert count_tokens_approximately(kept) <= budget
    assert isinstance(kept[0], HumanMessage)  # chat APIs expect a user turn first


def test_system_prompt_survives_trimming() -> None:
    system = SystemMessage("You are a helpful bot.")
    messages = [system, *long_conversation(20)]

    kept = trim_history(messages, 200)

    assert kept[0] is system
    assert kept[-1] is messages[-1]
    assert len(kept) < len(messages)


def test_latest_user_message_is_kept_even_over_budget() -> None:
    huge = HumanMessage("word " * 2_000)
    messages = [*long_conversation(3), huge]

    kept = trim_history(messages, 50)

    assert kept == [huge]


def test_latest_user_message_and_system_prompt_are_kept_even_over_budget() -> None:
    system = SystemMessage("You are a helpful bot.")
    huge = HumanMessage("word " * 2_000)

    kept = trim_history([system, *long_conversation(3), huge], 50)

    assert kept == [system, huge]
