"""Profile the chat service's workers during a C=1 run and print where a reply's CPU time goes.

Run on demand (tools/profile.sh installs py-spy, deploys the benchmark settings and runs this).
py-spy is copied into the test host (it has no route out) and records every worker of the chat
service (``--gil``: the samples of the thread holding the GIL, i.e. Python's busy time;
``--nonblocking``: the workers are not paused) while this script sends replies one at a time.
Each sampled stack is put in one phase by its innermost frame that belongs to a known layer,
and the phases are printed as shares of all samples and as milliseconds per reply.

Example (what tools/profile.sh runs):
    python -m tests.bench.profile --base-url https://10.231.0.11 --insecure \\
        --model-host 10.231.0.1 --host chatbot1 --py-spy build/py-spy-venv/bin/py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.bench import host as test_host
from tests.bench.stream_bench import ModelServer, Stack, drive, stream_stack

# Phases, innermost match wins: (name, pattern on a frame's file path). Order matters only
# between patterns that can match the same frame.
PHASES: tuple[tuple[str, str], ...] = (
    ("database: SQLAlchemy / psycopg", r"/(sqlalchemy|psycopg|psycopg_pool|flask_sqlalchemy)/"),
    ("redis", r"/redis/"),
    (
        "model client: openai / httpx / langchain",
        r"/(openai|httpx|httpcore|h11|anyio|langchain_openai|langchain_core|tiktoken)/",
    ),
    ("langgraph", r"/langgraph/"),
    (
        "auth / rate limit",
        r"/(jwt|flask_jwt_extended|flask_limiter|limits)/|/webapp/(security|rate_limits)\.py",
    ),
    ("gunicorn / flask / werkzeug", r"/(gunicorn|flask|werkzeug|jinja2|itsdangerous|blinker)/"),
    ("metrics / logs", r"/prometheus_client/|/webapp/(metrics|logs)\.py|/logging/"),
    ("app code (webapp)", r"/webapp/"),
)
OTHER = "other (stdlib, pydantic outside the layers above)"
# Frames in py-spy's raw (collapsed) format: "function (file:line)".
FRAME = re.compile(r"\((?P<file>[^():]+)(?::\d+)?\)$")


def phase_of(stack: str) -> str:
    """Return the phase of one collapsed stack (frames root first, separated by ";")."""
    for frame in reversed(stack.split(";")):
        match = FRAME.search(frame.strip())
        path = match.group("file") if match else frame
        for name, pattern in PHASES:
            if re.search(pattern, path):
                return name
    return OTHER


def breakdown(raw: str) -> collections.Counter[str]:
    """Count the samples of each phase in py-spy's raw output (``stack count`` lines)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[phase_of(stack)] += int(number)
    return counts


def chat_workers(host: str) -> list[str]:
    """Return the PIDs (inside the host) of the chat service's gunicorn workers."""
    master = test_host.run(host, "systemctl show -P MainPID chatbot@chat.service").strip()
    workers = test_host.run(host, f"pgrep -P {master} || true").split()
    if not workers:
        msg = "no chat service workers on the test host (is chatbot@chat running?)"
        raise RuntimeError(msg)
    return workers


def install_py_spy(host: str, executable: Path) -> str:
    """Copy the py-spy binary into the host; return its path there."""
    target = "/usr/local/bin/py-spy"
    with executable.open("rb") as binary:
        subprocess.run(
            [
                str(test_host.HOST_SH),
                "exec",
                host,
                "sh",
                "-c",
                f"cat > {target} && chmod 755 {target}",
            ],
            stdin=binary,
            check=True,
            timeout=60,
        )
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the deployed system, https://…")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed certificate")
    parser.add_argument("--model-host", default="127.0.0.1", help="address for the model server")
    parser.add_argument("--model-port", type=int, default=18080, help="port for the model server")
    parser.add_argument("--host", required=True, help="test host name (tools/testbed)")
    parser.add_argument("--py-spy", type=Path, required=True, help="the py-spy executable")
    parser.add_argument("--replies", type=int, default=300, help="replies to profile (300)")
    parser.add_argument("--warm-up", type=int, default=30, help="untimed replies first (30)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (250)")
    parser.add_argument("--all-threads", action="store_true", help="not only the GIL holder")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


async def _replies(args: argparse.Namespace, stack: Stack, count: int) -> float:
    async with httpx.AsyncClient(verify=not args.insecure, timeout=60) as client:
        token, conversation = stack.conversations[0]
        started = time.perf_counter()
        samples = await drive(
            1, count, lambda _w: stream_stack(client, stack.base_url, token, conversation)
        )
        errors = [s.error for s in samples if s.error]
        if errors:
            msg = f"{len(errors)} of {count} replies failed; first: {errors[0]}"
            raise RuntimeError(msg)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Profile, then print the phase table."""
    args = parse_args(argv)
    py_spy = install_py_spy(args.host, args.py_spy)
    loop = asyncio.new_event_loop()
    with ModelServer(args.model_host, args.model_port, 20, 0.005):
        client = httpx.AsyncClient(verify=not args.insecure, timeout=60)
        stack = Stack(client, args.base_url.rstrip("/"))
        loop.run_until_complete(stack.prepare(1, 1))
        loop.run_until_complete(_replies(args, stack, args.warm_up))
        recorders = []
        mode = "--idle" if args.all_threads else "--gil"
        for pid in chat_workers(args.host):
            # Its PID goes to a file: the profile is written when that process gets SIGINT.
            command = (
                f"{py_spy} record --pid {pid} --rate {args.rate} --format raw --full-filenames "
                f"--nonblocking {mode} --output /run/py-spy-{pid}.txt & "
                f"echo $! > /run/py-spy-{pid}.pid; wait"
            )
            recorders.append(
                (
                    pid,
                    subprocess.Popen(
                        [str(test_host.HOST_SH), "exec", args.host, "sh", "-c", command]
                    ),
                )
            )
        time.sleep(2)  # py-spy attaches (bounded: it either runs or has exited by then)
        seconds = loop.run_until_complete(_replies(args, stack, args.replies))
        counts: collections.Counter[str] = collections.Counter()
        for pid, recorder in recorders:
            test_host.run(args.host, f"kill -INT $(cat /run/py-spy-{pid}.pid)")
            recorder.wait(timeout=60)
            counts += breakdown(test_host.run(args.host, f"cat /run/py-spy-{pid}.txt"))
        loop.run_until_complete(client.aclose())
    loop.close()
    total = sum(counts.values())
    print(f"{args.replies} replies at C=1 in {seconds:.1f} s; {total} samples at {args.rate} Hz")
    print("| phase | share | ms per reply |")
    print("|---|---|---|")
    figures = {}
    for name, number in counts.most_common():
        ms = number / args.rate * 1000 / args.replies
        figures[name] = {"samples": number, "share": number / total, "ms_per_reply": ms}
        print(f"| {name} | {number / total:.1%} | {ms:.2f} |")
    print(
        f"| total (chat workers, {'all threads' if args.all_threads else 'GIL held'}) | 100% "
        f"| {total / args.rate * 1000 / args.replies:.2f} |"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"replies": args.replies, "phases": figures}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
