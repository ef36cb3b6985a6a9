"""Benchmark streamed replies: our whole stack, the mock model directly, and the LiteLLM proxy.

Run on demand, never in the test suite (numbers depend on the machine). The deployment must use
the OpenAI-compatible test server this script starts as its model (tests/bench/vars.yml does:
`tools/bench.sh` deploys it and runs this script). One run measures, side by side:

* ours: nginx -> gunicorn -> Flask -> LangGraph -> model, with auth, persistence and SSE;
* ours-v1: the same stack's OpenAI-compatible ``/v1/chat/completions``, streamed, with a personal
  API key and nothing stored (the same mock model, catalogue, quota and usage accounting);
* mock: the test model server's /v1/chat/completions, streamed (the baseline);
* litellm: the LiteLLM proxy (pinned, 2 workers, in its own venv) in front of the same mock,
  when --litellm names its ``litellm`` executable.

For each concurrency level the rounds alternate between the systems (the order rotates each
round); reported are time to first token (TTFT) and whole-reply time at p50/p95/p99, the TTFT
overhead over the mock, replies/s, and CPU time per reply of each system's own processes (ours:
every process of the users chatbot, www-data, postgres and redis on the test host; LiteLLM: its
process tree; the mock: its process). With --host also: a cached reply's server time (gunicorn's
access log), the authenticated ``GET /api/v1/chat/conversations`` against a bare gunicorn
"hello" on the same host, and the PSS of the auth, chat and admin services. --capacity ramps the
concurrency until TTFT p99 passes 100 ms; --open-streams holds that many streams open at once.
The side-by-side table is printed in Markdown; --json writes every figure.

Example (what tools/bench.sh runs):
    python -m tests.bench.stream_bench --base-url https://10.231.0.11 --insecure \\
        --model-host 10.231.0.1 --model-port 18080 --host chatbot1 \\
        --litellm build/litellm-venv/bin/litellm --json build/bench-results.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.bench import host as test_host
from tests.bench.litellm_proxy import LITELLM_VERSION, LiteLLMProxy, process_tree_cpu_seconds
from tests.bench.report import markdown_table

ROOT = Path(__file__).resolve().parents[2]

# The model name the deployment asks for (tests/bench/vars.yml: app_llm_model).
MODEL = "bench"
# Capacity: the TTFT p99 the ramp must stay under, and its bound on levels.
CAPACITY_TTFT_P99_MS = 100.0
# Concurrent streams of the untimed warm-up (--warm-up replies per system).
WARM_UP_STREAMS = 4
# The system name of the OpenAI-compatible endpoint of the stack under test.
OURS_V1 = "ours-v1"


@dataclass
class Sample:
    """One streamed reply: seconds to the first token and to the end, or the error."""

    ttft: float = 0.0
    total: float = 0.0
    tokens: int = 0
    error: str = ""
    request_id: str = ""


class Hold:
    """Keeps streams open after their first token until every one of them has had it.

    So that ``count`` streams are open at once at the end, each counted from its own start.
    """

    def __init__(self, count: int) -> None:
        """Wait for ``count`` streams."""
        self.count = count
        self.settled = 0
        self.open = 0
        self.peak_open = 0
        self.released = asyncio.Event()

    async def first_token(self) -> None:
        """Count a stream that got its first token; wait, open, until the hold is released."""
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        self.settle()
        await self.released.wait()
        self.open -= 1

    def settle(self) -> None:
        """Count a stream that got its first token or failed; release all after the last."""
        self.settled += 1
        if self.settled >= self.count:
            self.released.set()


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50/p95/p99 of values in milliseconds (nearest-rank)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


async def stream_openai(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    api_key: str | None = None,
    hold: Hold | None = None,
    content: str = "benchmark",
) -> Sample:
    """Stream one reply from an OpenAI-compatible server (the mock, LiteLLM in front of it, or
    our ``/v1``).

    With ``hold``, the stream stays open after its first token until the hold is released.
    ``content`` is the question (ours answers a repeated one from its reply cache).
    """
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": content}],
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    sample = Sample()
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", f"{url}/chat/completions", json=body, headers=headers
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                sample.error = f"HTTP {response.status_code}: {response.text[:200]}"
                return sample
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                choices = chunk.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    if not sample.tokens:
                        sample.ttft = time.perf_counter() - started
                    sample.tokens += 1
                    if hold is not None:
                        await hold.first_token()
                        break
    except (httpx.HTTPError, ValueError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    sample.total = time.perf_counter() - started
    return sample


async def stream_stack(
    client: httpx.AsyncClient,
    base_url: str,
    token: str,
    conversation_id: int,
    content: str | None = None,
    hold: Hold | None = None,
) -> Sample:
    """Send one message through the deployed system and read its SSE reply.

    Without ``content`` the text is fresh each time: the same history would be answered from
    the reply cache. With ``hold``, the stream stays open after its first token until the hold
    is released.
    """
    sample = Sample()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    url = f"{base_url}/api/v1/chat/conversations/{conversation_id}/messages"
    started = time.perf_counter()
    event = ""
    try:
        text = content or f"benchmark {secrets.token_hex(8)}"
        async with client.stream("POST", url, json={"content": text}, headers=headers) as response:
            sample.request_id = response.headers.get("x-request-id", "")
            if response.status_code >= 400:
                await response.aread()
                sample.error = f"HTTP {response.status_code}: {response.text[:200]}"
                return sample
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "token":
                    if not sample.tokens:
                        sample.ttft = time.perf_counter() - started
                    sample.tokens += 1
                    if hold is not None:
                        await hold.first_token()
                        break
                elif line.startswith("data: ") and event in ("done", "error"):
                    if event == "error":
                        sample.error = line[6:200]
                    break
    except httpx.HTTPError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    sample.total = time.perf_counter() - started
    return sample


class Stack:
    """Accounts and conversations on the deployed system, one conversation per stream."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        """Remember the client and the system's address."""
        self.client = client
        self.base_url = base_url
        self.tokens: list[str] = []
        self.api_keys: list[str] = []
        self.conversations: list[tuple[str, int]] = []

    async def prepare(self, users: int, conversations: int) -> None:
        """Register and log in users, then create conversations spread over them."""
        password = secrets.token_urlsafe(18)
        for _ in range(users):
            email = f"bench-{secrets.token_hex(6)}@example.com"
            body = {"email": email, "password": password}
            reply = await self.client.post(f"{self.base_url}/api/v1/auth/register", json=body)
            reply.raise_for_status()
            reply = await self.client.post(f"{self.base_url}/api/v1/auth/login", json=body)
            reply.raise_for_status()
            token = reply.json()["access_token"]
            self.tokens.append(token)
            # A personal API key of the same user, for /v1.
            reply = await self.client.post(
                f"{self.base_url}/api/v1/auth/api-keys",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {token}"},
            )
            reply.raise_for_status()
            self.api_keys.append(reply.json()["key"])
        self.conversations = await self.new_conversations(conversations)

    async def new_conversations(self, count: int) -> list[tuple[str, int]]:
        """Create conversations spread over the users; return (token, id) of each."""
        created = []
        for index in range(count):
            token = self.tokens[index % len(self.tokens)]
            reply = await self.client.post(
                f"{self.base_url}/api/v1/chat/conversations",
                json={"title": f"bench {index}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            reply.raise_for_status()
            created.append((token, reply.json()["conversation"]["id"]))
        return created


@dataclass
class System:
    """One system under test: how to send it a reply, and the CPU time its processes used."""

    name: str
    reply: Callable[[int], Awaitable[Sample]]
    cpu: Callable[[], float | None]


@dataclass
class Tally:
    """What the rounds of one level measured for one system."""

    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float | None = 0.0

    def figures(self) -> dict:
        """Return percentiles, rate, errors and CPU per reply."""
        good = [s for s in self.samples if not s.error and s.tokens]
        result = {
            "replies": len(self.samples),
            "errors": len(self.samples) - len(good),
            "first_error": next((s.error for s in self.samples if s.error), ""),
            "ttft_ms": percentiles([s.ttft for s in good]),
            "total_ms": percentiles([s.total for s in good]),
            "tokens_mean": statistics.mean([s.tokens for s in good]) if good else 0,
            "replies_per_s": len(self.samples) / self.seconds if self.seconds else 0.0,
        }
        if self.cpu is not None and self.samples:
            result["cpu_ms_per_reply"] = self.cpu * 1000 / len(self.samples)
        return result


async def measure(system: System, level: int, replies: int, tally: Tally) -> None:
    """Send `replies` replies to one system from `level` concurrent streams; add to the tally."""
    cpu_before = system.cpu()
    started = time.perf_counter()
    tally.samples += await drive(level, replies, system.reply)
    tally.seconds += time.perf_counter() - started
    cpu_after = system.cpu()
    if cpu_before is None or cpu_after is None or tally.cpu is None:
        tally.cpu = None
    else:
        tally.cpu += cpu_after - cpu_before


def make_systems(
    args: argparse.Namespace,
    stack: Stack,
    model: ModelServer,
    proxy: LiteLLMProxy | None,
    plain: httpx.AsyncClient,
    tls: httpx.AsyncClient,
) -> list[System]:
    """Return the systems under test, ours first, with clients that live for one level."""
    model_url = f"{model.url}/v1"

    def ours(worker: int) -> Awaitable[Sample]:
        # One conversation per concurrent stream: a conversation has at most one reply being
        # generated at a time (a second one is refused with 409).
        token, conversation_id = stack.conversations[worker]
        return stream_stack(tls, args.base_url, token, conversation_id)

    def ours_v1(worker: int) -> Awaitable[Sample]:
        # A fresh question each time, as for ours: a repeated one comes from the reply cache.
        key = stack.api_keys[worker % len(stack.api_keys)]
        question = f"benchmark {secrets.token_hex(8)}"
        return stream_openai(tls, f"{args.base_url}/v1", MODEL, key, content=question)

    systems = [
        System("ours", ours, lambda: test_host.cpu_seconds(args.host)),
        System(OURS_V1, ours_v1, lambda: test_host.cpu_seconds(args.host)),
        System(
            "mock",
            lambda _worker: stream_openai(plain, model_url, MODEL),
            lambda: process_tree_cpu_seconds(model.pid),
        ),
    ]
    if proxy is not None:
        systems.append(
            System(
                "litellm",
                lambda _worker: stream_openai(plain, proxy.url, MODEL, proxy.master_key),
                proxy.cpu_seconds,
            )
        )
    return systems


def clients(args: argparse.Namespace, level: int) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Return a plain HTTP client (mock, LiteLLM) and a TLS one (ours) for `level` streams."""
    limits = httpx.Limits(max_connections=level + 10, max_keepalive_connections=level + 10)
    timeout = httpx.Timeout(args.timeout)
    plain = httpx.AsyncClient(limits=limits, timeout=timeout)
    tls = httpx.AsyncClient(limits=limits, timeout=timeout, verify=not args.insecure)
    return plain, tls


async def run_level(
    args: argparse.Namespace,
    level: int,
    stack: Stack,
    model: ModelServer,
    proxy: LiteLLMProxy | None,
) -> dict:
    """Measure one concurrency level on every system, rounds alternated; return the figures."""
    replies = max(args.min_replies, level * args.rounds)
    per_round = max(level, math.ceil(replies / args.rounds))
    plain, tls = clients(args, level)
    async with plain, tls:
        systems = make_systems(args, stack, model, proxy, plain, tls)
        tallies = {system.name: Tally() for system in systems}
        for round_number in range(args.rounds):
            shift = round_number % len(systems)
            for system in systems[shift:] + systems[:shift]:
                await measure(system, level, per_round, tallies[system.name])
    figures: dict = {"level": level, "replies_per_system": per_round * args.rounds}
    for name, tally in tallies.items():
        figures[name] = tally.figures()
    figures["overhead_ttft_ms"] = {
        name: {
            q: figures[name]["ttft_ms"][q] - figures["mock"]["ttft_ms"][q]
            for q in ("p50", "p95", "p99")
        }
        for name in tallies
        if name != "mock"
    }
    return figures


async def warm_up(
    args: argparse.Namespace, stack: Stack, model: ModelServer, proxy: LiteLLMProxy | None
) -> None:
    """Send every system a few untimed replies: first requests import, connect and fill caches.

    LiteLLM's first replies take seconds, and each of its workers has its own first reply.
    """
    plain, tls = clients(args, WARM_UP_STREAMS)
    async with plain, tls:
        for system in make_systems(args, stack, model, proxy, plain, tls):
            await drive(WARM_UP_STREAMS, args.warm_up, system.reply)


async def drive(level: int, replies: int, make: Callable[[int], Awaitable[Sample]]) -> list[Sample]:
    """Run `replies` calls of make(worker), from `level` concurrent workers numbered 0..level-1."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(replies):
        queue.put_nowait(index)
    samples: list[Sample] = []

    async def worker(number: int) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            samples.append(await make(number))

    await asyncio.gather(*(worker(number) for number in range(level)))
    return samples


async def capacity(
    args: argparse.Namespace, stack: Stack, model: ModelServer, levels: list[int]
) -> dict:
    """Raise our concurrency until TTFT p99 passes 100 ms (or errors); return each step."""
    steps = []
    best = 0.0
    for level in levels:
        plain, tls = clients(args, level)
        async with plain, tls:
            ours = make_systems(args, stack, model, None, plain, tls)[0]
            tally = Tally()
            await measure(ours, level, max(args.min_replies, level * args.rounds), tally)
        step = {"level": level, **tally.figures()}
        steps.append(step)
        print(
            f"capacity C={level}: {step['replies_per_s']:.1f} replies/s, TTFT p99 "
            f"{step['ttft_ms']['p99']:.1f} ms, errors {step['errors']}",
            flush=True,
        )
        if step["errors"] or not step["ttft_ms"]["p99"] <= CAPACITY_TTFT_P99_MS:
            break
        best = max(best, step["replies_per_s"])
    return {"ttft_p99_limit_ms": CAPACITY_TTFT_P99_MS, "replies_per_s": best, "steps": steps}


async def _ramp(
    count: int, rate: float, bound: float, open_one: Callable[[Hold], Awaitable[Sample]]
) -> tuple[list[Sample], int]:
    """Open ``count`` streams, ``rate`` per second, each held open after its first token.

    Returns the samples and how many streams were open at once, at most. Bounded: what has
    not settled within ``bound`` seconds after the last one was opened counts as an error.
    """
    hold = Hold(count)

    async def one() -> Sample:
        sample = await open_one(hold)
        if sample.error or not sample.tokens:
            hold.settle()
        return sample

    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(1 / rate)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hold.released.wait(), bound)
    hold.released.set()
    samples = []
    for task in tasks:
        try:
            samples.append(await asyncio.wait_for(task, bound))
        except TimeoutError:
            task.cancel()
            samples.append(Sample(error="no first token in time"))
    return samples, hold.peak_open


async def open_streams(
    args: argparse.Namespace, stack: Stack, model: ModelServer, count: int
) -> dict:
    """Hold ``count`` streams open at once, ours and the mock's; compare their first tokens.

    The streams are opened ``--open-rate`` per second (1,000 at the same instant would measure
    1,000 TLS handshakes and reply starts queued on two cores, in the stack and in this
    client, not open streams), on a model slow enough that every reply is still streaming when
    the last stream is opened; each stream stays open after its first token until all have had
    theirs.
    """
    limits = httpx.Limits(max_connections=count + 10)
    timeout = httpx.Timeout(args.timeout)
    bound = args.timeout
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as plain:
        direct, _ = await _ramp(
            count,
            args.open_rate,
            bound,
            lambda hold: stream_openai(plain, f"{model.url}/v1", MODEL, hold=hold),
        )
    opened = iter(range(count))
    async with httpx.AsyncClient(
        limits=limits, timeout=timeout, verify=not args.insecure
    ) as client:
        samples, peak = await _ramp(
            count,
            args.open_rate,
            bound,
            lambda hold: stream_stack(
                client,
                args.base_url,
                *stack.conversations[next(opened) % len(stack.conversations)],
                hold=hold,
            ),
        )
    served = [s for s in samples if not s.error and s.tokens]
    baseline = percentiles([s.ttft for s in direct if not s.error and s.tokens])
    ttft = percentiles([s.ttft for s in served])
    return {
        "opened": count,
        "open_rate_per_s": args.open_rate,
        "open_at_once": peak,
        "served": len(served),
        "errors": count - len(served),
        "first_error": next((s.error for s in samples if s.error), ""),
        "ttft_ms": ttft,
        "mock_ttft_ms": baseline,
        "overhead_ttft_ms": {q: ttft[q] - baseline[q] for q in ttft},
    }


async def cached_reply(args: argparse.Namespace, stack: Stack) -> dict:
    """Send the same first message in fresh conversations: the first fills the reply cache.

    Returns the server time of the cached ones (gunicorn's access log) and their client times.
    """
    count = args.cached
    text = f"benchmark cached {secrets.token_hex(8)}"
    conversations = await stack.new_conversations(count + 1)
    async with httpx.AsyncClient(timeout=args.timeout, verify=not args.insecure) as client:
        first = await stream_stack(client, args.base_url, *conversations[0], content=text)
        hits = [
            await stream_stack(client, args.base_url, *conversation, content=text)
            for conversation in conversations[1:]
        ]
    good = [s for s in hits if not s.error and s.tokens]
    durations = test_host.access_log_durations(args.host, [s.request_id for s in good])
    return {
        "replies": count,
        "errors": count - len(good) + (1 if first.error else 0),
        "first_error": first.error or next((s.error for s in hits if s.error), ""),
        "server_ms": percentiles([d / 1000 for d in durations.values()]),
        "server_logged": len(durations),
        "uncached_client_total_ms": first.total * 1000,
        "client_ttft_ms": percentiles([s.ttft for s in good]),
        "client_total_ms": percentiles([s.total for s in good]),
    }


async def api_rate(args: argparse.Namespace, stack: Stack) -> dict:
    """Compare authenticated GET /api/v1/chat/conversations with a bare gunicorn "hello".

    Both run on the test host and are called from inside it, over loopback, by the same
    keep-alive client: ours at the chat service's gunicorn, "hello" on its own port. Ours is
    also measured through nginx over HTTPS from the controller.
    """
    token = stack.tokens[0]
    path = "/api/v1/chat/conversations"
    host, requests, concurrency = args.host, args.api_requests, args.api_concurrency
    ours = test_host.request_rate(
        host, args.chat_port, path, f"Authorization: Bearer {token}", requests, concurrency
    )
    pid_file = test_host.start_hello(host, "127.0.0.1")
    try:
        ready = False
        for _ in range(50):  # up to ~10 s for gunicorn to bind
            check = test_host.run(
                host, f"python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:"
                f"{test_host.HELLO_PORT}/', timeout=1)\" && echo up || true",
            )  # fmt: skip
            if "up" in check:
                ready = True
                break
            time.sleep(0.2)
        if not ready:
            msg = "the bare gunicorn 'hello' app did not start on the test host"
            raise RuntimeError(msg)
        hello = test_host.request_rate(host, test_host.HELLO_PORT, "/", "", requests, concurrency)
    finally:
        test_host.stop_hello(host, pid_file)
    via_nginx = await _nginx_rate(args, token, path, requests, concurrency)
    return {
        "concurrency": concurrency,
        "ours": ours,
        "hello": hello,
        "ours_via_nginx": via_nginx,
        "ratio": ours["req_per_s"] / hello["req_per_s"] if hello["req_per_s"] else 0.0,
    }


async def _nginx_rate(
    args: argparse.Namespace, token: str, path: str, requests: int, concurrency: int
) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    counts = {"ok": 0, "errors": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    async with httpx.AsyncClient(
        limits=limits, timeout=args.timeout, verify=not args.insecure
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                reply = await client.get(f"{args.base_url}{path}", headers=headers)
                counts["ok" if reply.status_code == 200 else "errors"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {**counts, "seconds": seconds, "req_per_s": counts["ok"] / seconds}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the deployed system, https://…")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed certificate")
    parser.add_argument("--model-host", default="127.0.0.1", help="address for the model server")
    parser.add_argument("--model-port", type=int, default=18080, help="port for the model server")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (20)")
    parser.add_argument("--token-delay", type=float, default=0.005, help="seconds between tokens")
    parser.add_argument("--levels", default="1,10,50", help="concurrency levels (1,10,50)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per level, alternated (4)")
    parser.add_argument("--min-replies", type=int, default=200, help="replies per level, at least")
    parser.add_argument("--warm-up", type=int, default=40, help="untimed replies per system")
    parser.add_argument("--users", type=int, default=10, help="accounts to spread streams over")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--host", help="test host name (tools/testbed): CPU, memory, access log")
    parser.add_argument("--litellm", type=Path, help="the litellm executable to compare with")
    parser.add_argument("--litellm-port", type=int, default=14000, help="LiteLLM's loopback port")
    parser.add_argument("--cached", type=int, default=30, help="cached replies to time (30)")
    parser.add_argument("--api-requests", type=int, default=3000, help="GETs per API rate run")
    parser.add_argument("--api-concurrency", type=int, default=10, help="concurrent GETs (10)")
    parser.add_argument("--chat-port", type=int, default=8002, help="chat gunicorn's port (host)")
    parser.add_argument(
        "--capacity",
        default="",
        help="concurrency steps to raise until TTFT p99 > 100 ms (e.g. 20,40,60,80,100,150,200)",
    )
    parser.add_argument(
        "--open-streams",
        default="",
        help="comma list of stream counts to hold open at once on a slow model (e.g. 100,1000)",
    )
    parser.add_argument(
        "--open-rate", type=float, default=50.0, help="open streams started per second (50)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


class ModelServer:
    """The OpenAI-compatible test server, in its own process.

    Not in this process: the client side of 200 streams would take the CPU the server needs
    and inflate the direct baseline.
    """

    def __init__(self, host: str, port: int, tokens: int, token_delay: float) -> None:
        """Remember where and how the server answers."""
        self.url = f"http://{host}:{port}"
        self.argv = [
            sys.executable, "-m", "tests.fakes.openai_server", "--host", host,
            "--port", str(port), "--tokens", str(tokens), "--token-delay", str(token_delay),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Return the server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ModelServer:
        """Start the server and wait (bounded) until it answers."""
        # Its log (and a traceback per client that resets a connection) goes to a file.
        log_path = ROOT / "build/mock-server.log"
        log_path.parent.mkdir(exist_ok=True)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v1/models", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        msg = f"the test model server did not answer at {self.url} within 15 s"
        raise RuntimeError(msg)

    def __exit__(self, *_exc: object) -> None:
        """Stop the server this benchmark started, by its PID."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def configure(self, model: str, **behavior: float | int) -> None:
        """Change how the server answers for one model."""
        body = {"model": model, **behavior}
        httpx.post(f"{self.url}/_admin/behaviors", json=body, timeout=5).raise_for_status()


def _raise_open_files(wanted: int) -> None:
    # 1,000 open streams need a socket each, on both ends when the mock is local.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def _prepare(args: argparse.Namespace, conversations: int) -> Stack:
    client = httpx.AsyncClient(verify=not args.insecure, timeout=args.timeout)
    stack = Stack(client, args.base_url.rstrip("/"))
    await stack.prepare(args.users, conversations)
    return stack


def main_async_run(args: argparse.Namespace) -> dict:
    """Run the benchmark; return every figure."""
    levels = [int(level) for level in args.levels.split(",") if level]
    steps = [int(level) for level in args.capacity.split(",") if level]
    opens = [int(count) for count in args.open_streams.split(",") if count]
    _raise_open_files(4 * max([*opens, *steps, *levels, 256]) + 256)
    figures: dict = {"levels": [], "open_streams": []}
    loop = asyncio.new_event_loop()
    try:
        with ModelServer(args.model_host, args.model_port, args.tokens, args.token_delay) as model:
            conversations = max([*levels, *steps, *opens, WARM_UP_STREAMS])
            stack = loop.run_until_complete(_prepare(args, conversations))
            proxy = None
            if args.litellm:
                proxy = LiteLLMProxy(args.litellm, MODEL, f"{model.url}/v1", args.litellm_port)
            with proxy or contextlib.nullcontext():
                loop.run_until_complete(warm_up(args, stack, model, proxy))
                for level in levels:
                    result = loop.run_until_complete(run_level(args, level, stack, model, proxy))
                    figures["levels"].append(result)
                    print(_format_level(result), flush=True)
            figures["litellm_version"] = LITELLM_VERSION if proxy else None
            if args.host:
                figures["cached"] = _section(
                    "cached reply", lambda: loop.run_until_complete(cached_reply(args, stack))
                )
                figures["api_rate"] = _section(
                    "API call vs hello", lambda: loop.run_until_complete(api_rate(args, stack))
                )
            if steps:
                figures["capacity"] = _section(
                    "capacity",
                    lambda: loop.run_until_complete(capacity(args, stack, model, steps)),
                )
            if opens:
                # A slow model: every reply still streams when the last stream is opened.
                ramp_seconds = max(opens) / args.open_rate
                model.configure(MODEL, tokens=int(ramp_seconds) + 30, token_delay=1.0)
            for count in opens:
                result = _section(
                    f"{count} open streams",
                    lambda count=count: loop.run_until_complete(
                        open_streams(args, stack, model, count)
                    ),
                )
                if result is None:
                    continue
                figures["open_streams"].append(result)
                print(
                    f"open streams {count:5d}: {result['served']} got their first token, "
                    f"{result['errors']} errors, TTFT overhead p50 "
                    f"{result['overhead_ttft_ms']['p50']:.0f} ms, p99 "
                    f"{result['overhead_ttft_ms']['p99']:.0f} ms"
                    + (f"; first error: {result['first_error']}" if result["first_error"] else ""),
                    flush=True,
                )
            if args.host:
                # After the load: the workers have imported and cached what serving needs.
                figures["pss_mb"] = _section("PSS", lambda: test_host.services_pss_mb(args.host))
            loop.run_until_complete(stack.client.aclose())
    finally:
        loop.close()
    return figures


def _section(name: str, measure: Callable[[], dict]) -> dict | None:
    """Run one of the measurements after the levels; on failure say why and go on."""
    try:
        return measure()
    except (httpx.HTTPError, subprocess.SubprocessError, OSError, RuntimeError, ValueError) as exc:
        print(f"{name}: failed: {type(exc).__name__}: {exc}"[:2000], file=sys.stderr, flush=True)
        return None


def _format_level(result: dict) -> str:
    lines = [f"concurrency {result['level']:4d}, {result['replies_per_system']} replies each:"]
    for name in ("ours", "mock", "litellm"):
        if name not in result:
            continue
        figures = result[name]
        line = "  {name:8s} TTFT p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(
            name=name, **figures["ttft_ms"]
        )
        if name in result["overhead_ttft_ms"]:
            line += " (overhead {p50:6.1f} {p95:6.1f} {p99:6.1f})".format(
                **result["overhead_ttft_ms"][name]
            )
        line += f", {figures['replies_per_s']:.1f} replies/s"
        if "cpu_ms_per_reply" in figures:
            line += f", CPU {figures['cpu_ms_per_reply']:.1f} ms/reply"
        line += f", errors {figures['errors']}"
        if figures["first_error"]:
            line += f" (first: {figures['first_error'][:120]})"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    args = parse_args(argv)
    figures = main_async_run(args)
    print()
    print(markdown_table(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
