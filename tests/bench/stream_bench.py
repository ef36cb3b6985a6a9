"""Benchmark streamed replies through the whole stack against the model server called directly.

Run on demand, never in the test suite (numbers depend on the machine). The deployment must use
the OpenAI-compatible test server this script starts as its model (inventories/bench does:
`tools/bench.sh` deploys it and runs this script). For each concurrency level it sends replies
two ways and reports time to first token (TTFT) and whole-reply time at p50/p95/p99:

* direct: the test model server's /v1/chat/completions, streamed (the baseline);
* stack: nginx -> gunicorn -> Flask -> LangGraph -> model, with auth, persistence and SSE.

The overhead is stack minus direct. With --host, the CPU time that the host's app, nginx,
PostgreSQL and Redis processes spent per reply is reported too. --open-streams measures how many
concurrently open streams one app host keeps serving (each stream must receive its first token).

Example (what tools/bench.sh runs):
    python tests/bench/stream_bench.py --base-url https://10.231.0.11 --insecure \\
        --model-host 10.231.0.1 --model-port 18080 --levels 1,50,200 --host chatbot1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


# The model name the deployment asks for (tests/bench/vars.yml: app_llm_model).
MODEL = "bench"
# Host processes whose CPU time counts as "our processes" (the app, nginx, PostgreSQL, Redis).
HOST_USERS = ("chatbot", "www-data", "postgres", "redis")
# Sum utime+stime (clock ticks) of every process of those users, inside the test host.
CPU_COMMAND = (
    "for u in " + " ".join(HOST_USERS) + "; do for p in $(pgrep -u $u); do "
    "cut -d' ' -f14,15 /proc/$p/stat 2>/dev/null; done; done "
    "| awk '{t+=$1+$2} END{print t+0}'; getconf CLK_TCK"
)


@dataclass
class Sample:
    """One streamed reply: seconds to the first token and to the end, or the error."""

    ttft: float = 0.0
    total: float = 0.0
    tokens: int = 0
    error: str = ""


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50/p95/p99 of values in milliseconds (nearest-rank)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


async def stream_direct(client: httpx.AsyncClient, model_url: str, model: str) -> Sample:
    """Stream one reply straight from the model server."""
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "benchmark"}],
    }
    sample = Sample()
    started = time.perf_counter()
    try:
        async with client.stream("POST", f"{model_url}/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                choices = chunk.get("choices") or []
                if choices and choices[0].get("delta", {}).get("content"):
                    if not sample.tokens:
                        sample.ttft = time.perf_counter() - started
                    sample.tokens += 1
    except (httpx.HTTPError, ValueError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    sample.total = time.perf_counter() - started
    return sample


async def stream_stack(
    client: httpx.AsyncClient, base_url: str, token: str, conversation_id: int
) -> Sample:
    """Send one message through the deployed system and read its SSE reply."""
    sample = Sample()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    url = f"{base_url}/api/v1/chat/conversations/{conversation_id}/messages"
    started = time.perf_counter()
    event = ""
    try:
        # A fresh text each time: the same history would be answered from the reply cache.
        content = f"benchmark {secrets.token_hex(8)}"
        async with client.stream(
            "POST", url, json={"content": content}, headers=headers
        ) as response:
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
            self.tokens.append(reply.json()["access_token"])
        for index in range(conversations):
            token = self.tokens[index % len(self.tokens)]
            reply = await self.client.post(
                f"{self.base_url}/api/v1/chat/conversations",
                json={"title": f"bench {index}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            reply.raise_for_status()
            self.conversations.append((token, reply.json()["conversation"]["id"]))


def host_cpu_seconds(host: str | None) -> float | None:
    """Return the CPU seconds the host's app, nginx, PostgreSQL and Redis processes used so far."""
    if not host:
        return None
    output = subprocess.run(
        [str(ROOT / "tools/testbed/host.sh"), "exec", host, "sh", "-c", CPU_COMMAND],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    ticks, per_second = float(output[0]), float(output[1])
    return ticks / per_second


async def run_level(args: argparse.Namespace, level: int, stack: Stack, model_url: str) -> dict:
    """Measure one concurrency level both ways; return the figures."""
    replies = max(args.min_replies, level * args.rounds)
    limits = httpx.Limits(max_connections=level + 10, max_keepalive_connections=level + 10)
    timeout = httpx.Timeout(args.timeout)
    results = {}
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as direct_client:
        results["direct"] = await _drive(
            level, replies, lambda _worker: stream_direct(direct_client, model_url, MODEL)
        )
    cpu_before = host_cpu_seconds(args.host)
    async with httpx.AsyncClient(
        limits=limits, timeout=timeout, verify=not args.insecure, http2=False
    ) as stack_client:

        def one(worker: int):
            # One conversation per concurrent stream: a conversation has at most one reply
            # being generated at a time (a second one is refused with 409).
            token, conversation_id = stack.conversations[worker]
            return stream_stack(stack_client, args.base_url, token, conversation_id)

        started = time.perf_counter()
        results["stack"] = await _drive(level, replies, one)
        elapsed = time.perf_counter() - started
    cpu_after = host_cpu_seconds(args.host)
    figures = {"level": level, "replies": replies}
    for way, samples in results.items():
        good = [s for s in samples if not s.error and s.tokens]
        figures[way] = {
            "errors": len(samples) - len(good),
            "first_error": next((s.error for s in samples if s.error), ""),
            "ttft_ms": percentiles([s.ttft for s in good]),
            "total_ms": percentiles([s.total for s in good]),
            "tokens_mean": statistics.mean([s.tokens for s in good]) if good else 0,
        }
    figures["stack"]["replies_per_s"] = replies / elapsed
    if cpu_before is not None and cpu_after is not None:
        figures["stack"]["host_cpu_ms_per_reply"] = (cpu_after - cpu_before) * 1000 / replies
    figures["overhead_ttft_ms"] = {
        q: figures["stack"]["ttft_ms"][q] - figures["direct"]["ttft_ms"][q]
        for q in ("p50", "p95", "p99")
    }
    return figures


async def _drive(level: int, replies: int, make) -> list[Sample]:
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


async def open_streams(args: argparse.Namespace, stack: Stack, count: int) -> dict:
    """Open `count` streams at once on a slow model; count those that get their first token."""
    limits = httpx.Limits(max_connections=count + 10)
    timeout = httpx.Timeout(args.timeout)
    async with httpx.AsyncClient(
        limits=limits, timeout=timeout, verify=not args.insecure
    ) as client:
        samples = await asyncio.gather(
            *(
                stream_stack(
                    client, args.base_url, *stack.conversations[i % len(stack.conversations)]
                )
                for i in range(count)
            )
        )
    served = [s for s in samples if not s.error and s.tokens]
    return {
        "opened": count,
        "served": len(served),
        "first_error": next((s.error for s in samples if s.error), ""),
        "ttft_ms": percentiles([s.ttft for s in served]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the deployed system, https://…")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed certificate")
    parser.add_argument("--model-host", default="127.0.0.1", help="address for the model server")
    parser.add_argument("--model-port", type=int, default=18080, help="port for the model server")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (20)")
    parser.add_argument("--token-delay", type=float, default=0.005, help="seconds between tokens")
    parser.add_argument("--levels", default="1,50,200", help="concurrency levels (1,50,200)")
    parser.add_argument("--rounds", type=int, default=3, help="replies per stream per level (3)")
    parser.add_argument("--min-replies", type=int, default=50, help="replies per level, at least")
    parser.add_argument("--users", type=int, default=10, help="accounts to spread streams over")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--host", help="test host name (tools/testbed) to sample CPU time on")
    parser.add_argument(
        "--open-streams",
        default="",
        help="comma list of stream counts to hold open at once on a slow model (e.g. 100,500,1000)",
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

    def __enter__(self) -> ModelServer:
        """Start the server and wait (bounded) until it answers."""
        self.process = subprocess.Popen(self.argv, cwd=ROOT)
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


async def main_async(args: argparse.Namespace) -> dict:
    """Run the benchmark; return every figure."""
    levels = [int(level) for level in args.levels.split(",") if level]
    opens = [int(count) for count in args.open_streams.split(",") if count]
    with ModelServer(args.model_host, args.model_port, args.tokens, args.token_delay) as server:
        model_url = f"{server.url}/v1"
        async with httpx.AsyncClient(verify=not args.insecure, timeout=args.timeout) as client:
            stack = Stack(client, args.base_url.rstrip("/"))
            await stack.prepare(args.users, max(levels + opens + [1]))
        figures: dict[str, list[dict]] = {"levels": [], "open_streams": []}
        for level in levels:
            result = await run_level(args, level, stack, model_url)
            figures["levels"].append(result)
            print(_format_level(result), flush=True)
        if opens:
            # A slow model keeps every stream open for the whole measurement.
            server.configure(MODEL, tokens=30, token_delay=0.5)
        for count in opens:
            result = await open_streams(args, stack, count)
            figures["open_streams"].append(result)
            print(
                f"open streams {count:5d}: {result['served']} got their first token "
                f"(p50 {result['ttft_ms']['p50']:.0f} ms, p99 {result['ttft_ms']['p99']:.0f} ms)"
                + (f"; first error: {result['first_error']}" if result["first_error"] else ""),
                flush=True,
            )
        return figures


def _format_level(result: dict) -> str:
    stack, direct, over = result["stack"], result["direct"], result["overhead_ttft_ms"]
    lines = [
        f"concurrency {result['level']:4d}, {result['replies']} replies:",
        "  direct TTFT p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(**direct["ttft_ms"]),
        "  stack  TTFT p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(**stack["ttft_ms"]),
        "  overhead    p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(**over),
        "  direct whole reply p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(
            **direct["total_ms"]
        ),
        "  stack  whole reply p50/p95/p99 {p50:7.1f} {p95:7.1f} {p99:7.1f} ms".format(
            **stack["total_ms"]
        ),
        f"  stack replies/s {stack['replies_per_s']:.1f}, errors direct {direct['errors']}"
        f" stack {stack['errors']}",
    ]
    if "host_cpu_ms_per_reply" in stack:
        lines.append(
            f"  host CPU per reply (app+nginx+db+redis) {stack['host_cpu_ms_per_reply']:.1f} ms"
        )
    if stack["first_error"]:
        lines.append(f"  first stack error: {stack['first_error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    args = parse_args(argv)
    figures = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
