"""What a bot run reports while it runs and when it ends, and where it reports it.

The graph calls a `ReplySink` (run-scoped, passed in the `Context`): `token` for every piece of
the reply as it is produced, `stop_requested` between pieces, `finish` once the reply is stored.
The chat service's sink writes to a Redis stream and records metrics; tests collect into lists.
Nothing here knows about Flask, Redis or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

ReplyStatus = Literal["complete", "stopped", "failed"]
COMPLETE: ReplyStatus = "complete"
STOPPED: ReplyStatus = "stopped"
FAILED: ReplyStatus = "failed"

CallOutcome = Literal["success", "error", "cancelled"]


@dataclass(frozen=True)
class ReplyRecord:
    """A finished reply, as the bot asks the store to keep it.

    Attributes:
        content: The reply text: every token produced, joined (partial when stopped or failed).
        status: ``complete``, ``stopped`` (by the user) or ``failed`` (the model failed).
        model: Name of the model that answered; None when no model produced anything.
        tokens_in: Prompt tokens (as the model reported, else estimated; 0 if it never ran).
        tokens_out: Completion tokens (likewise).
        latency_ms: Milliseconds from the start of the run to the end of generation.
        cached: Served from the reply cache, without calling a model.
        fallback: Produced by the fallback model because the primary failed.
    """

    content: str
    status: ReplyStatus
    model: str | None
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cached: bool = False
    fallback: bool = False


@dataclass(frozen=True)
class ModelCall:
    """One request to a model during a run (the primary, then perhaps the fallback).

    Attributes:
        model: The model's name (as the reply named it, when it answered).
        outcome: ``success``, ``error``, or ``cancelled`` (stopped by the user).
        seconds: How long the call took.
        tokens_in: Prompt tokens it used (0 for a failed call).
        tokens_out: Tokens it wrote (0 for a failed call).
    """

    model: str
    outcome: CallOutcome
    seconds: float
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True)
class ReplyResult:
    """How a run ended.

    Attributes:
        reply: The reply as stored.
        message: The stored assistant message (the store's dict); None if the conversation
            disappeared (was deleted) while the reply was being generated.
        calls: The model calls made, in order; empty for a cached reply.
    """

    reply: ReplyRecord
    message: dict[str, Any] | None
    calls: tuple[ModelCall, ...]


class ReplySink(Protocol):
    """Receives a run's output as it happens. Called from the thread running the graph."""

    def token(self, text: str) -> None:
        """Deliver one non-empty piece of the reply, as soon as it is produced."""
        ...

    def stop_requested(self) -> bool:
        """Return whether the user asked to stop; checked before each model call and after
        each token."""
        ...

    def finish(self, result: ReplyResult) -> None:
        """Report the stored outcome of the run (the last call of a run that did not raise)."""
        ...


class NullSink:
    """A sink that discards everything and never stops a run."""

    def token(self, text: str) -> None:
        """Discard the token."""

    def stop_requested(self) -> bool:
        """Never ask to stop."""
        return False

    def finish(self, result: ReplyResult) -> None:
        """Discard the outcome."""
