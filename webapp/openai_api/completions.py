"""Chat completions of the OpenAI-compatible API that are not stored as conversations.

The bot answers them as it answers a conversation, through the same graph, model selection
(the catalogue, fallbacks), reply cache, metrics and daily usage, with two small stand-ins for
the chat service's storage:

- `MemoryHistoryStore`, the bot's ``HistoryStore`` over the request's messages: it stores no
  message, only the reply's tokens in the owner's daily usage (``daily_usage``, what the quota
  counts), as a stored reply would;
- `QueueSink`, the bot's ``ReplySink``: it hands the tokens to the request over a queue, and
  asks the run to stop once the client has gone.

The run takes a slot of the process's reply runner (``LLM_MAX_CONCURRENT_REPLIES`` bounds
stored and unstored replies together) and runs in one of its threads. Nothing here knows of
Flask's request; the JSON shapes of OpenAI's answers are built here too.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI
from sqlalchemy.orm import Session, sessionmaker

from webapp.bot import COMPLETE, Bot, ReplyRecord, ReplyResult
from webapp.llm.selection import ChatRunnable, ModelSelection, NamedModel
from webapp.replies.runner import ReplyRunner
from webapp.replies.stream import record_reply_metrics
from webapp.services.quota import add_usage

__all__ = [
    "CompletionOptions",
    "CompletionRun",
    "MemoryHistoryStore",
    "QueueSink",
    "RunEvent",
    "chunk",
    "completion_body",
    "completion_id",
    "history",
    "start_completion",
    "usage",
    "with_options",
]

logger = logging.getLogger(__name__)

# The conversation id the bot is given for a completion that has none (it only names it in
# errors and hands it back to the store).
_NO_CONVERSATION = 0


@dataclass(frozen=True)
class CompletionOptions:
    """The per-request settings of a completion that the model selection does not apply.

    (The temperature and the reply length are the selection's own: ``select_models``.)

    Attributes:
        top_p: Nucleus sampling; None: the server's default.
        stop: Sequences that end the reply.
    """

    top_p: float | None = None
    stop: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether nothing differs from the model's own settings."""
        return self.top_p is None and not self.stop


def _configured(model: ChatRunnable, options: CompletionOptions) -> ChatRunnable:
    # Only OpenAI-compatible models take these settings; the built-in offline model (and test
    # fakes) answer the same either way. A copy keeps the shared model (and its kept-alive
    # clients) as it is; a model with a stop or extra parameters (top_p) streams through
    # ChatOpenAI rather than the lean path, and ChatOpenAI sends them.
    if not isinstance(model, ChatOpenAI):
        return model
    update: dict[str, Any] = {}
    if options.stop:
        update["stop"] = list(options.stop)
    if options.top_p is not None:
        update["model_kwargs"] = {**model.model_kwargs, "top_p": options.top_p}
    return model.model_copy(update=update)


def with_options(selection: ModelSelection, options: CompletionOptions) -> ModelSelection:
    """Return the selection with the request's settings applied to each of its models.

    The settings join the cache parameters, so a reply cached under other settings is not
    served for these.

    Args:
        selection: The reply's models, as selected for the request's model and temperature.
        options: The request's other settings.

    Returns:
        The selection to run with (the same one when there is nothing to apply).
    """
    if options.empty:
        return selection
    models = tuple(
        NamedModel(each.name, _configured(each.model, options)) for each in selection.models
    )
    cache_params = selection.cache_params
    if cache_params is not None:
        cache_params = {**cache_params, "top_p": options.top_p, "stop": list(options.stop)}
    return dataclasses.replace(selection, models=models, cache_params=cache_params)


def history(turns: Sequence[tuple[str, str]]) -> list[BaseMessage]:
    """Return (role, text) turns of users and the assistant as the messages the bot reads."""
    return [
        AIMessage(content=text) if role == "assistant" else HumanMessage(content=text)
        for role, text in turns
    ]


class MemoryHistoryStore:
    """The bot's ``HistoryStore`` over the request's messages: the reply is counted, not kept."""

    def __init__(
        self, messages: Sequence[BaseMessage], sessions: sessionmaker[Session], user_id: int
    ) -> None:
        """Hold the messages to answer, for one run.

        Args:
            messages: The conversation, oldest first, ending with the user's message.
            sessions: Makes the session the usage is counted in.
            user_id: Whose daily usage the reply counts toward.
        """
        self._messages = list(messages)
        self._sessions = sessions
        self._user_id = user_id

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        """Return the request's messages."""
        return list(self._messages)

    def save_reply(self, conversation_id: int, reply: ReplyRecord) -> dict[str, Any] | None:
        """Count the reply's tokens toward the owner's usage (as a stored reply's are).

        Returns:
            The reply as a dict (``content``, ``status``, ``model``, ``tokens_in``,
            ``tokens_out``): nothing is stored.
        """
        if not reply.cached and reply.tokens_in + reply.tokens_out > 0:
            with self._sessions() as session:
                add_usage(
                    session,
                    user_id=self._user_id,
                    tokens_in=reply.tokens_in,
                    tokens_out=reply.tokens_out,
                )
                session.commit()
        return {
            "content": reply.content,
            "status": reply.status,
            "model": reply.model,
            "tokens_in": reply.tokens_in,
            "tokens_out": reply.tokens_out,
        }


@dataclass(frozen=True)
class RunEvent:
    """What a run reported: a token, its end, or its breakdown.

    Attributes:
        text: The token (``kind="token"``).
        result: How the run ended (``kind="end"``).
        kind: ``token``, ``end`` or ``broken`` (the store or sink failed: no result).
    """

    kind: str
    text: str = ""
    result: ReplyResult | None = None


class QueueSink:
    """The bot's ``ReplySink`` for one completion: tokens to a queue, stop once the client left."""

    def __init__(self) -> None:
        """Start with an empty queue."""
        # queue.Queue, not SimpleQueue: it waits on a threading.Condition, which gevent patches
        # (the chat service may run on gevent's worker), as the reply channel does.
        self.events: queue.Queue[RunEvent] = queue.Queue()
        self._stop = threading.Event()

    def token(self, text: str) -> None:
        """Hand a token to the request."""
        self.events.put(RunEvent("token", text=text))

    def stop_requested(self) -> bool:
        """Return whether the client went away."""
        return self._stop.is_set()

    def finish(self, result: ReplyResult) -> None:
        """Record the run's metrics (as a stored reply's) and hand its end to the request."""
        record_reply_metrics(result)
        self.events.put(RunEvent("end", result=result))

    def broken(self) -> None:
        """Tell the request that the run broke down without a result."""
        self.events.put(RunEvent("broken"))

    def cancel(self) -> None:
        """Ask the run to stop (the client went away): it closes the model's stream."""
        self._stop.set()


@dataclass(frozen=True)
class CompletionRun:
    """A completion being generated.

    Attributes:
        sink: Its events.
        future: Completes with the run's result (None if it broke down).
    """

    sink: QueueSink
    future: Future[ReplyResult | None]

    def next_event(self, timeout: float) -> RunEvent | None:
        """Return the next event, or None if none came within ``timeout`` seconds."""
        try:
            return self.sink.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, keepalive: float) -> Iterator[RunEvent | None]:
        """Yield the events until the end (None after ``keepalive`` seconds without one)."""
        while True:
            event = self.next_event(keepalive)
            yield event
            if event is not None and event.kind != "token":
                return


def start_completion(
    runner: ReplyRunner,
    bot: Bot,
    *,
    user_id: int,
    messages: Sequence[BaseMessage],
    selection: ModelSelection,
) -> CompletionRun:
    """Start answering the messages in a slot of the reply runner.

    Args:
        runner: The process's reply runner.
        bot: The process's bot.
        user_id: The API key's owner (whose usage the reply counts toward).
        messages: The conversation, oldest first, ending with the user's message.
        selection: The models, system prompt and settings to answer with.

    Returns:
        The run: its events and its future.

    Raises:
        BusyError: If the process already generates as many replies as it may.
    """
    slot = runner.reserve()
    sink = QueueSink()
    store = MemoryHistoryStore(messages, runner.sessions, user_id)

    def run() -> ReplyResult | None:
        try:
            return bot.run(store, _NO_CONVERSATION, sink, selection=selection)
        except Exception:
            # The usage could not be counted (database down): the model failures do not get
            # here, the bot reports those as failed replies itself.
            logger.exception("an unstored completion broke down")
            sink.broken()
            return None

    return CompletionRun(sink, runner.submit_task(slot, run))


# --- OpenAI's shapes --------------------------------------------------------------------------


def completion_id() -> str:
    """Return a new completion id (``chatcmpl-...``)."""
    return f"chatcmpl-{secrets.token_hex(12)}"


def usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    """Return OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


def completion_body(
    completion: str, created: int, model: str, content: str, tokens_in: int, tokens_out: int
) -> dict[str, Any]:
    """Return a whole (not streamed) ``chat.completion``."""
    return {
        "id": completion,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(tokens_in, tokens_out),
        "system_fingerprint": None,
    }


def chunk(
    completion: str,
    created: int,
    model: str,
    delta: dict[str, str] | None,
    *,
    finish_reason: str | None = None,
    with_usage: bool = False,
    usage_value: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Return one ``chat.completion.chunk``.

    Args:
        completion: The completion's id (the same on every chunk).
        created: Its creation time (Unix seconds).
        model: The model asked for.
        delta: What the chunk adds (``{"content": ...}``); None for the usage chunk, which has
            no choices.
        finish_reason: ``stop`` on the last chunk of the choice.
        with_usage: The client asked for usage: every chunk carries ``usage`` (null until the
            last one).
        usage_value: The usage, on the last chunk.

    Returns:
        The chunk.
    """
    body: dict[str, Any] = {
        "id": completion,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage:
        body["usage"] = usage_value
    return body


def created_now() -> int:
    """Return the current time as OpenAI's ``created`` (Unix seconds)."""
    return int(time.time())


def succeeded(result: ReplyResult | None) -> bool:
    """Whether a run produced a complete reply."""
    return result is not None and result.reply.status == COMPLETE
