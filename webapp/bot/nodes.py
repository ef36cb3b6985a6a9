"""Nodes of the bot graph.

load_history -> [lookup_cache -> replay_cached | generate] -> persist -> emit

Nodes that depend on things fixed when the graph is built once per process (the token budget,
the models, the cache) are made by small factories; everything that changes per reply arrives
through the runtime context: the store, the conversation and the sink that receives tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, cast

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
from webapp.bot.events import (
    COMPLETE,
    FAILED,
    STOPPED,
    ModelCall,
    ReplyRecord,
    ReplyResult,
    ReplySink,
    ReplyStatus,
)
from webapp.bot.state import State
from webapp.llm.cache import CachedReply, ReplyCache, cache_key
from webapp.llm.factory import ChatRunnable, answered_by
from webapp.llm.selection import NamedModel
from webapp.llm.streaming import TextStreamingModel

logger = logging.getLogger(__name__)

Update = dict[str, Any]


class RuntimeNode(Protocol):
    """A node of the graph that reads the run's context (langgraph passes ``runtime`` by name)."""

    def __call__(self, state: State, runtime: Runtime[Context]) -> Update:
        """Return the node's update of the state."""
        ...


GENERATE_NODE: Final = "generate"
REPLAY_CACHED_NODE: Final = "replay_cached"


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


def make_load_history(history_token_budget: int) -> RuntimeNode:
    """Make the node that loads the conversation from the store and trims it.

    Args:
        history_token_budget: Token budget for the history sent to the model.

    Returns:
        The `load_history` node.
    """

    def load_history(state: State, runtime: Runtime[Context]) -> Update:
        """Load the conversation and trim it to the token budget; the run's clock starts."""
        started_at = time.monotonic()
        conversation_id = runtime.context.conversation_id
        history = runtime.context.store.load_history(conversation_id)
        if not history:
            # The chat service stores the user message before running the bot; an empty history
            # is a bug upstream, and every provider would reject an empty prompt anyway.
            msg = f"Conversation {conversation_id} has no messages to answer"
            raise ValueError(msg)
        selection = runtime.context.selection
        if selection is not None and selection.system_prompt:
            # First, and kept by the trimming whatever the budget: the conversation's
            # instructions to the model.
            history = [SystemMessage(selection.system_prompt), *history]
        return {
            "started_at": started_at,
            "messages": trim_history(history, history_token_budget),
        }

    return load_history


def run_cache_params(context: Context, fixed: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Return the cache parameters of a run: its selection's, else the bot's own (``fixed``).

    None means the run's reply is neither looked up nor stored (the offline model).
    """
    if context.selection is not None:
        return context.selection.cache_params
    return fixed


def make_lookup_cache(cache: ReplyCache, params: Mapping[str, Any] | None) -> RuntimeNode:
    """Make the node that looks the reply up in the cache.

    Args:
        cache: The reply cache.
        params: The model settings that decide the answer of a run without a selection, part
            of the key; None caches only runs whose selection has cache parameters.

    Returns:
        The `lookup_cache` node.
    """
    fixed = dict(params) if params is not None else None

    def lookup_cache(state: State, runtime: Runtime[Context]) -> Update:
        """Compute the reply's cache key and fetch a cached reply under it (unless fresh)."""
        run_params = run_cache_params(runtime.context, fixed)
        if run_params is None:
            return {"cache_key": None, "cached": None}
        key = cache_key(run_params, state.messages)
        cached = None if runtime.context.fresh else cache.get(key)
        return {"cache_key": key, "cached": cached}

    return lookup_cache


def route_after_lookup(state: State) -> Literal["replay_cached", "generate"]:
    """Replay a cached reply, or generate one."""
    return REPLAY_CACHED_NODE if state.cached is not None else GENERATE_NODE


def _latency_ms(state: State) -> int:
    return max(0, round((time.monotonic() - state.started_at) * 1000))


def replay_cached(state: State, runtime: Runtime[Context]) -> Update:
    """Stream a cached reply token by token, exactly like a model would, and stop on request.

    Args:
        state: The run's state, holding the cached reply.
        runtime: The run's runtime, whose context holds the sink.

    Returns:
        The update setting the reply (``cached=True``; no model call).
    """
    cached = state.cached
    if cached is None:
        msg = "replay_cached ran without a cached reply"
        raise RuntimeError(msg)
    sink = runtime.context.sink
    pieces: list[str] = []
    status: ReplyStatus = COMPLETE
    for text in cached.tokens:
        pieces.append(text)
        sink.token(text)
        if sink.stop_requested():
            status = STOPPED
            break
    reply = ReplyRecord(
        content="".join(pieces),
        status=status,
        model=cached.model,
        tokens_in=cached.tokens_in,
        tokens_out=cached.tokens_out,
        latency_ms=_latency_ms(state),
        cached=True,
    )
    return {"reply": reply}


def _merge_reply(parts: list[BaseMessage]) -> AIMessage:
    # A streaming model yields chunks; one that cannot stream yields its whole message once.
    if not parts:
        return AIMessage("")
    if all(isinstance(part, AIMessageChunk) for part in parts):
        chunks = cast("list[AIMessageChunk]", parts)
        merged = message_chunk_to_message(add_ai_message_chunks(chunks[0], *chunks[1:]))
        return cast("AIMessage", merged)
    if len(parts) == 1 and isinstance(parts[0], AIMessage):
        return parts[0]
    msg = f"Expected the model to stream AI message chunks, got {parts!r}"
    raise TypeError(msg)


@dataclass
class _Attempt:
    """What one model call produced.

    Attributes:
        parts: The messages a langchain model streamed (empty on the lean path).
        stopped: The user stopped the reply.
        error: The model's error, if it failed.
        model_name: The model the server named, on the lean path.
        usage: ``(tokens_in, tokens_out)`` the server reported, on the lean path.
    """

    parts: list[BaseMessage]
    stopped: bool = False
    error: Exception | None = None
    model_name: str | None = None
    usage: tuple[int, int] | None = None


def _stream_model(
    model: ChatRunnable,
    messages: list[Any],
    config: RunnableConfig,
    sink: ReplySink,
    pieces: list[str],
) -> _Attempt:
    """Stream one model's reply into the sink until it ends, fails or the user stops it.

    A model with a lean text stream (`TextStreamingModel`: the OpenAI-compatible models) hands
    over plain text; any other chat model streams message chunks through ``stream()``.

    Only the model's own errors are caught (they may lead to the fallback); the sink's errors
    (Redis down) propagate and end the run.
    """
    attempt = _Attempt(parts=[])
    if isinstance(model, TextStreamingModel):
        try:
            text_stream = model.open_text_stream(messages)
        except Exception as exc:
            attempt.error = exc
            return attempt
        if text_stream is not None:
            _relay(attempt, iter(text_stream), text_stream.close, sink, pieces)
            attempt.model_name, attempt.usage = text_stream.model, text_stream.usage
            return attempt
    stream: Iterator[BaseMessage] = iter(model.stream(messages, config))

    def texts() -> Iterator[str]:
        for part in stream:
            attempt.parts.append(part)
            text = str(part.text)
            if text:
                yield text

    _relay(attempt, texts(), getattr(stream, "close", None), sink, pieces)
    return attempt


def _relay(
    attempt: _Attempt,
    texts: Iterator[str],
    close: Callable[[], object] | None,
    sink: ReplySink,
    pieces: list[str],
) -> None:
    try:
        while True:
            try:
                text = next(texts)
            except StopIteration:
                return
            except Exception as exc:
                attempt.error = exc
                return
            pieces.append(text)
            sink.token(text)
            if sink.stop_requested():
                attempt.stopped = True
                return
    finally:
        # Closing the model's stream (after a stop, an error, or the end) closes its HTTP
        # response at once: the model server sees the connection go and stops generating.
        if close is not None:
            close()


def _answer(attempt: _Attempt, default_name: str) -> tuple[str, tuple[int, int] | None]:
    """Return who answered and the usage the server reported (None when it reported none)."""
    if not attempt.parts:
        return attempt.model_name or default_name, attempt.usage
    reply = _merge_reply(attempt.parts)
    usage = reply.usage_metadata
    reported = (usage["input_tokens"], usage["output_tokens"]) if usage else None
    return answered_by(reply, default_name), reported


def _estimated_usage(messages: list[Any], content: str) -> tuple[int, int]:
    tokens_out = count_tokens_approximately([AIMessage(content)]) if content else 0
    return count_tokens_approximately(messages), tokens_out


def make_generate(
    models: Sequence[NamedModel],
    *,
    cache: ReplyCache | None = None,
) -> Callable[[State, Runtime[Context], RunnableConfig], Update]:
    """Make the node that asks the models for a reply: the primary, then the fallbacks.

    A run with a selection (`Context.selection`) asks the selection's models instead, in
    their order, and records each reply under the selection's (catalogue) names.

    Args:
        models: The primary model, then the fallback model if there is one.
        cache: Where complete replies of the primary are cached, if anywhere.

    Returns:
        The `generate` node.

    Raises:
        ValueError: If no model is given.
    """
    if not models:
        msg = "at least one model is needed"
        raise ValueError(msg)
    candidates = tuple(models)

    def generate(state: State, runtime: Runtime[Context], config: RunnableConfig) -> Update:
        """Stream the reply from the first model that starts answering.

        The fallback is tried only while nothing has gone out to the user: once tokens were
        sent, a failure ends the reply as failed rather than gluing a second answer to the
        first. Each model retries on its own (the OpenAI client's bounded retries); nothing
        here retries. A stop request is honoured between tokens (closing the model's stream)
        and before trying the fallback.
        """
        sink = runtime.context.sink
        selection = runtime.context.selection
        chain = selection.models if selection is not None else candidates
        calls: list[ModelCall] = []
        pieces: list[str] = []
        for index, candidate in enumerate(chain):
            if sink.stop_requested():
                return _generated(state, calls, STOPPED, pieces, model=None, fallback=index > 0)
            started = time.monotonic()
            attempt = _stream_model(candidate.model, state.messages, config, sink, pieces)
            seconds = time.monotonic() - started
            if attempt.error is not None:
                calls.append(ModelCall(candidate.name, "error", seconds))
                if pieces or index == len(chain) - 1:
                    logger.warning(
                        "model %s failed%s; the reply is marked failed",
                        candidate.name,
                        " mid-reply" if pieces else "",
                        exc_info=attempt.error,
                    )
                    return _generated(
                        state, calls, FAILED, pieces, model=candidate.name, fallback=index > 0
                    )
                logger.warning(
                    "model %s failed before answering; falling back to %s",
                    candidate.name,
                    chain[index + 1].name,
                    exc_info=attempt.error,
                )
                continue
            model_name, usage = _answer(attempt, candidate.name)
            if selection is not None:
                # Replies name the catalogue's model (what users chose and reports count),
                # not the upstream id the provider answered under.
                model_name = candidate.name
            if usage:
                tokens_in, tokens_out = usage
            else:
                # Some servers send no usage, and a stopped stream never gets to it: estimate
                # rather than store zero (the daily quota counts these).
                tokens_in, tokens_out = _estimated_usage(state.messages, "".join(pieces))
            status: ReplyStatus = STOPPED if attempt.stopped else COMPLETE
            calls.append(
                ModelCall(
                    model_name,
                    "cancelled" if attempt.stopped else "success",
                    seconds,
                    tokens_in,
                    tokens_out,
                )
            )
            if status == COMPLETE and index == 0 and cache is not None and state.cache_key:
                cache.put(
                    state.cache_key,
                    CachedReply(model_name, tuple(pieces), tokens_in, tokens_out),
                )
            return _generated(
                state,
                calls,
                status,
                pieces,
                model=model_name,
                fallback=index > 0,
                usage=(tokens_in, tokens_out),
            )
        msg = "unreachable: the last model either answered or failed"
        raise AssertionError(msg)

    return generate


def _generated(
    state: State,
    calls: list[ModelCall],
    status: ReplyStatus,
    pieces: list[str],
    *,
    model: str | None,
    fallback: bool,
    usage: tuple[int, int] | None = None,
) -> Update:
    content = "".join(pieces)
    if usage is None:
        # A failed or stopped call reports no usage: estimate what the model worked on, and
        # charge nothing for a model that produced nothing.
        usage = _estimated_usage(state.messages, content) if content else (0, 0)
    reply = ReplyRecord(
        content=content,
        status=status,
        model=model,
        tokens_in=usage[0],
        tokens_out=usage[1],
        latency_ms=_latency_ms(state),
        fallback=fallback,
    )
    return {"reply": reply, "calls": calls}


def persist(state: State, runtime: Runtime[Context]) -> Update:
    """Store the reply through the history store, whatever its status.

    Args:
        state: The run's state, with the reply.
        runtime: The run's runtime, whose context names the store and the conversation.

    Returns:
        The update setting `message` to the stored assistant message.
    """
    if state.reply is None:
        msg = "persist ran before a reply was produced"
        raise RuntimeError(msg)
    message = runtime.context.store.save_reply(runtime.context.conversation_id, state.reply)
    return {"message": message}


def emit(state: State, runtime: Runtime[Context]) -> Update:
    """Report the stored outcome to the sink (the end of the stream, metrics).

    Args:
        state: The run's state, with the stored reply.
        runtime: The run's runtime, whose context holds the sink.

    Returns:
        The update setting `result`.
    """
    if state.reply is None:
        msg = "emit ran before a reply was produced"
        raise RuntimeError(msg)
    result = ReplyResult(reply=state.reply, message=state.message, calls=tuple(state.calls))
    runtime.context.sink.finish(result)
    return {"result": result}
