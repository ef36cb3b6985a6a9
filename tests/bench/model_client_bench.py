"""Benchmark the model client alone: CPU time and first-token latency per streamed reply.

Run on demand, never in the test suite (pytest collects only tests/unit and tests/integration,
and this file is no test_*.py). It starts the OpenAI-compatible test server in a process of its
own (so its CPU time is not counted), then streams replies from it in alternating rounds, the
same conversation each time, with each of these clients:

* langchain: `ChatOpenAI.stream()` and the merge of the chunks, as the generate node streamed
  before the lean path (openai SDK, pydantic per chunk, `AIMessageChunk` per token);
* sdk-raw: the openai SDK's `with_streaming_response` (its request build and retries), the SSE
  lines parsed with `json` (no pydantic per chunk);
* lean: `LeanChatOpenAI.open_text_stream()` (webapp.llm.streaming: httpx, SSE lines, `json`);
* lean-orjson: the same with orjson for the JSON (to see whether it pays for a dependency);
* bot-langchain, bot-lean: a whole `Bot.run` (the LangGraph graph, the generate node, the
  history and sink stubbed out) around a plain `ChatOpenAI` and around `LeanChatOpenAI`.

For each it prints the CPU time of this process per reply (`time.process_time`), the time to
the first token (p50/p95) and how many new TCP connections it opened.

Example:
    nice -n 10 .venv/bin/python tests/bench/model_client_bench.py --replies 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_openai import ChatOpenAI

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from webapp.bot import Bot, ReplyRecord, ReplyResult  # noqa: E402
from webapp.llm import streaming  # noqa: E402
from webapp.llm.streaming import LeanChatOpenAI  # noqa: E402

MODEL = "bench-model"
MESSAGES: list[BaseMessage] = [
    HumanMessage("Hello"),
    AIMessage("Hi, how can I help?"),
    HumanMessage("Tell me a story about a fox and a dog, please."),
]

# One reply: call it, it returns after the last token; the argument records the first token.
Reply = Callable[[Callable[[], None]], None]


def start_server(tokens: int, token_delay: float) -> tuple[subprocess.Popen[str], str]:
    """Start the test model server in its own process; return it and its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.openai_server",
            "--tokens",
            str(tokens),
            "--token-delay",
            str(token_delay),
            "--max-recorded",
            "100",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "Fake OpenAI server listening on http://.../v1"
    if "listening on" not in line:
        process.terminate()
        msg = f"the test model server did not start: {line!r}"
        raise RuntimeError(msg)
    return process, line.rsplit(" ", 1)[-1].strip()


def chat_openai(base_url: str, cls: type[ChatOpenAI] = ChatOpenAI) -> ChatOpenAI:
    """Return the model as the factory configures it (webapp.llm.factory)."""
    return cls(
        model=MODEL,
        base_url=base_url,
        api_key="not-needed",
        max_completion_tokens=64,
        temperature=0.7,
        timeout=30,
        max_retries=1,
        streaming=True,
        stream_usage=True,
    )


def langchain_reply(base_url: str) -> Reply:
    model = chat_openai(base_url)

    def reply(first: Callable[[], None]) -> None:
        parts: list[AIMessageChunk] = []
        stream: Iterator[Any] = iter(model.stream(MESSAGES))
        for part in stream:
            parts.append(part)
            if part.text:
                first()
        merged = add_ai_message_chunks(parts[0], *parts[1:])
        assert merged.usage_metadata is not None

    return reply


def sdk_raw_reply(base_url: str) -> Reply:
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", timeout=30, max_retries=1)
    messages = [
        {"role": "user" if m.type == "human" else "assistant", "content": m.content}
        for m in MESSAGES
    ]

    def reply(first: Callable[[], None]) -> None:
        usage = None
        with client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            max_completion_tokens=64,
            temperature=0.7,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                payload = json.loads(line[6:])
                for choice in payload.get("choices") or ():
                    if choice["delta"].get("content"):
                        first()
                usage = payload.get("usage") or usage
        assert usage is not None

    return reply


def lean_reply(base_url: str) -> Reply:
    model = chat_openai(base_url, LeanChatOpenAI)
    assert isinstance(model, LeanChatOpenAI)

    def reply(first: Callable[[], None]) -> None:
        stream = model.open_text_stream(MESSAGES)
        assert stream is not None
        try:
            for _text in stream:
                first()
        finally:
            stream.close()
        assert stream.usage is not None

    return reply


def lean_orjson_reply(base_url: str) -> Reply:
    import orjson

    reply = lean_reply(base_url)
    shim = SimpleNamespace(
        loads=orjson.loads, dumps=lambda value, **_: orjson.dumps(value).decode()
    )

    def with_orjson(first: Callable[[], None]) -> None:
        saved = streaming.json
        streaming.json = shim  # type: ignore[assignment]
        try:
            reply(first)
        finally:
            streaming.json = saved

    return with_orjson


class _FixedHistory:
    """A HistoryStore that always answers the same conversation and stores nothing."""

    def load_history(self, conversation_id: int) -> list[BaseMessage]:
        return list(MESSAGES)

    def save_reply(self, conversation_id: int, reply: ReplyRecord) -> dict[str, Any]:
        return {"id": 1, "content": reply.content, "tokens_out": reply.tokens_out}


class _FirstTokenSink:
    """A ReplySink that reports the first token and never asks to stop."""

    def __init__(self, first: Callable[[], None]) -> None:
        self.first = first

    def token(self, text: str) -> None:
        self.first()

    def stop_requested(self) -> bool:
        return False

    def finish(self, result: ReplyResult) -> None:
        assert result.reply.tokens_out > 0


def bot_reply(model: ChatOpenAI) -> Reply:
    bot = Bot(model, model_name=MODEL)
    store = _FixedHistory()

    def reply(first: Callable[[], None]) -> None:
        result = bot.run(store, 1, _FirstTokenSink(first))
        assert result.reply.status == "complete"

    return reply


CLIENTS: dict[str, Callable[[str], Reply]] = {
    "langchain": langchain_reply,
    "sdk-raw": sdk_raw_reply,
    "lean": lean_reply,
    "lean-orjson": lean_orjson_reply,
    "bot-langchain": lambda base_url: bot_reply(chat_openai(base_url)),
    "bot-lean": lambda base_url: bot_reply(chat_openai(base_url, LeanChatOpenAI)),
}


def client_ports(base_url: str) -> set[str]:
    """Return the local ports of this host's TCP connections to the server (any state, from ss).

    A kept-alive connection keeps its port; a new one shows a port not seen before (closed
    ones linger in TIME-WAIT, so they are not mistaken for new ones later).
    """
    port = httpx.URL(base_url).port
    out = subprocess.run(
        ["ss", "-tanH", f"( dport = :{port} )"], capture_output=True, text=True, check=False
    ).stdout
    return {line.split()[3].rsplit(":", 1)[-1] for line in out.splitlines() if line.strip()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per client."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=300, help="replies per client")
    # Short rounds: a client idle for more than 5 s (the pools' keep-alive expiry) would open
    # a new connection at the start of its next round.
    parser.add_argument("--round", type=int, default=5, help="replies per client per round")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply")
    parser.add_argument("--token-delay", type=float, default=0.005, help="seconds between tokens")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="clients to compare")
    args = parser.parse_args(argv)

    server, base_url = start_server(args.tokens, args.token_delay)
    try:
        names = args.clients.split(",")
        replies = {name: CLIENTS[name](base_url) for name in names}
        cpu = dict.fromkeys(names, 0.0)
        ttft: dict[str, list[float]] = {name: [] for name in names}
        conns = dict.fromkeys(names, 0)
        for reply in replies.values():  # warm up: imports, first connection, caches
            for _ in range(5):
                reply(lambda: None)
        done = 0
        while done < args.replies:
            count = min(args.round, args.replies - done)
            for name, reply in replies.items():
                before = client_ports(base_url)
                for _ in range(count):
                    started = time.perf_counter()
                    first: list[float] = []

                    def mark(started: float = started, first: list[float] = first) -> None:
                        if not first:
                            first.append(time.perf_counter() - started)

                    cpu_before = time.process_time()
                    reply(mark)
                    cpu[name] += time.process_time() - cpu_before
                    ttft[name].append(first[0])
                conns[name] += len(client_ports(base_url) - before)
            done += count
        delay_ms = args.token_delay * 1000
        print(f"{args.replies} replies of {args.tokens} tokens, {delay_ms:g} ms apart")
        header = ("client", "CPU ms/reply", "TTFT p50 ms", "p95 ms", "new conns")
        print("{:<12} {:>12} {:>12} {:>8} {:>10}".format(*header))
        for name in names:
            times = sorted(ttft[name])
            p50 = statistics.median(times) * 1000
            p95 = times[int(len(times) * 0.95) - 1] * 1000
            per_reply = cpu[name] / args.replies * 1000
            print(f"{name:<12} {per_reply:>12.2f} {p50:>12.2f} {p95:>8.2f} {conns[name]:>10}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
