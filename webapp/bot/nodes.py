"""Nodes of the bot graph: load_history -> generate -> persist.

`load_history` and `generate` depend on things fixed when the graph is built once per process
(the token budget, the model), so they are made by small factories; everything that changes per
reply arrives through the runtime context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import (
    count_tokens_approximately,
    message_chunk_to_message,
    trim_messages,
)
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from webapp.bot.context import Context
from webapp.bot.state import State
from webapp.llm.factory import ChatRunnable, answered_by

Update = dict[str, Any]


def trim_history(messages: Sequence[BaseMessage], max_tokens: int) -> list[BaseMessage]:
    """Keep the most recent messages that fit the token budget.

    Tokens are estimated with langchain-core's approximate counter: it needs no tokenizer
    download and is the same for every provider. A leading system prompt is always kept, the
    kept history starts on a user message (what chat APIs expect), and the latest user message
    is kept even when it alone exceeds the budget: answering it is the point of the call.

    Args:
        messages: The conversation, oldest first.
        max_tokens: The token budget for the history.

    Returns:
        The messages to send to the model, oldest first.
    """
    history = list(messages)
    kept = trim_messages(
        history,
        max_tokens=max_tokens,
        token_counter=count_tokens_approximately,
        strategy="last",
        include_system=True,
        start_on="human",
    )
    latest_user = next(
        (
            index
            for index in range(len(history) - 1, -1, -1)
            if isinstance(history[index], HumanMessage)
        ),
        None,
    )
    if latest_user is None or any(message is history[latest_user] for message in kept):
        return kept
    system = history[:1] if isinstance(history[0], SystemMessage) else []
    return system + history[latest_user:]


def make_load_history(history_token_budget: int) -> Callable[[State, Runtime[Context]], Update]:
    """Make the node that loads the conversation from the store and trims it.

    Args:
        history_token_budget: Token budget for the history sent to the model.

    Returns:
        The `load_history` node.
    """

    def load_history(state: State, runtime: Runtime[Context]) -> Update:
        """Load the conversation and trim it to the token budget."""
        conversation_id = runtime.context.conversation_id
        history = runtime.context.store.load_history(conversation_id)
        if not history:
            # The chat service stores the user message before running the bot; an empty history
            # is a bug upstream, and every provider would reject an empty prompt anyway.
            msg = f"Conversation {conversation_id} has no messages to answer"
            raise ValueError(msg)
        return {"messages": trim_history(history, history_token_budget)}

    return load_history


def _merge_reply(parts: list[BaseMessage]) -> AIMessage:
    # A streaming model yields chunks; one that cannot stream yields its whole message once.
    if parts and all(isinstance(part, AIMessageChunk) for part in parts):
        chunks = cast("list[AIMessageChunk]", parts)
        merged = message_chunk_to_message(add_ai_message_chunks(chunks[0], *chunks[1:]))
        return cast("AIMessage", merged)
    if len(parts) == 1 and isinstance(parts[0], AIMessage):
        return parts[0]
    msg = f"Expected the model to stream AI message chunks, got {parts!r}"
    raise TypeError(msg)


def make_generate(
    model: ChatRunnable, *, model_name: str
) -> Callable[[State, RunnableConfig], Update]:
    """Make the node that asks the model for a reply.

    Args:
        model: The chat model (possibly with fallbacks).
        model_name: Name to record when the reply does not say which model produced it.

    Returns:
        The `generate` node.
    """

    def generate(state: State, config: RunnableConfig) -> Update:
        """Call the model with the trimmed history."""
        # stream(), not invoke(): with fallbacks, stream() moves on to the fallback only while
        # the primary has produced nothing. Once tokens went out to the user, a failure is an
        # error, not a second reply glued to the beginning of the first. Passing the node's
        # config on keeps the model run inside this node's callbacks, which is what lets
        # LangGraph's "messages" stream hand out the tokens as they arrive.
        reply = _merge_reply(list(model.stream(state.messages, config)))
        usage = reply.usage_metadata
        if usage:
            tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
        else:
            # Some OpenAI-compatible servers send no usage; an estimate beats storing zero.
            tokens_in = count_tokens_approximately(state.messages)
            tokens_out = count_tokens_approximately([reply])
        return {
            "reply": reply,
            "model_name": answered_by(reply, model_name),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
        }

    return generate


def persist(state: State, runtime: Runtime[Context]) -> Update:
    """Store the reply through the history store.

    Args:
        state: The run's state, with the reply.
        runtime: The run's runtime, whose context names the store and the conversation.

    Returns:
        The update setting `message` to the stored assistant message.
    """
    if state.reply is None:
        msg = "persist ran before generate produced a reply"
        raise RuntimeError(msg)
    message = runtime.context.store.save_reply(
        runtime.context.conversation_id,
        str(state.reply.text),
        model=state.model_name,
        tokens_in=state.tokens_in,
        tokens_out=state.tokens_out,
    )
    return {"message": message}
