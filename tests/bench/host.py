"""What the benchmark reads and runs on the test host: CPU time, memory, access log, "hello" app.

Everything goes through ``tools/testbed/host.sh exec`` (no SSH, no network route needed), each
command bounded by a timeout.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST_SH = ROOT / "tools/testbed/host.sh"

# Host processes whose CPU time counts as "our processes" (the app, nginx, PostgreSQL, Redis).
HOST_USERS = ("chatbot", "www-data", "postgres", "redis")
# Sum utime+stime (clock ticks) of every process of those users, inside the test host.
CPU_COMMAND = (
    "for u in " + " ".join(HOST_USERS) + "; do for p in $(pgrep -u $u); do "
    "cut -d' ' -f14,15 /proc/$p/stat 2>/dev/null; done; done "
    "| awk '{t+=$1+$2} END{print t+0}'; getconf CLK_TCK"
)
# The app services whose memory the issue counts (systemd units chatbot@NAME).
MEMORY_SERVICES = ("auth", "chat", "admin")
# Proportional set size (kB) of a unit's gunicorn master and its workers (its children), as
# smem sums it. By process tree, not cgroup: the test host may mount cgroup v1.
PSS_COMMAND = (
    "m=$(systemctl show -P MainPID chatbot@{name}.service); "
    "for p in $m $(pgrep -P $m); do "
    "awk '/^Pss:/{{print $2}}' /proc/$p/smaps_rollup 2>/dev/null; done "
    "| awk '{{t+=$1}} END{{print t+0}}'"
)
# The bare gunicorn app the authenticated API call is compared with, on the same host: the
# release's gunicorn, 2 workers, gthread with 4 threads (the worker count of the chat service).
HELLO_PORT = 8099
HELLO_APP = textwrap.dedent(
    """\
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    """
)


def run(host: str, command: str, timeout: float = 30) -> str:
    """Run a shell command inside the test host; return its standard output."""
    return subprocess.run(
        [str(HOST_SH), "exec", host, "sh", "-c", command],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout


def cpu_seconds(host: str | None) -> float | None:
    """Return the CPU seconds the host's app, nginx, PostgreSQL and Redis processes used so far."""
    if not host:
        return None
    output = run(host, CPU_COMMAND).split()
    ticks, per_second = float(output[0]), float(output[1])
    return ticks / per_second


def services_pss_mb(host: str) -> dict[str, float]:
    """Return the PSS in MB of each app service's process tree (master and workers)."""
    sizes = {}
    for name in MEMORY_SERVICES:
        sizes[name] = float(run(host, PSS_COMMAND.format(name=name)).strip() or 0) / 1024
    sizes["total"] = sum(sizes.values())
    return sizes


def access_log_durations(host: str, request_ids: list[str]) -> dict[str, float]:
    """Return gunicorn's duration_ms of each request id, from the chat service's journal.

    For a streamed reply gunicorn logs the access line once the whole body is sent, so the
    duration is the server's time for the whole reply.
    """
    if not request_ids:
        return {}
    output = run(host, "journalctl -u chatbot@chat.service -o cat --since -15min --no-pager")
    wanted = set(request_ids)
    found = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "gunicorn.access" and entry.get("request_id") in wanted:
            found[entry["request_id"]] = float(entry.get("duration_ms", 0))
    return found


def app_python(host: str) -> str:
    """Return the Python of the deployed release's virtualenv (it has gunicorn)."""
    # The chat service's main process runs gunicorn from the release's virtualenv.
    # Its argv[0], not /proc/PID/exe: the virtualenv's python is a symlink to the system one.
    pid = run(host, "systemctl show -P MainPID chatbot@chat.service").strip()
    executable = run(host, f"tr '\\0' '\\n' < /proc/{pid}/cmdline | head -1").strip()
    if not executable or pid == "0":
        msg = "chatbot@chat is not running on the test host: no gunicorn to start 'hello' with"
        raise RuntimeError(msg)
    return executable


def start_hello(host: str, bind: str) -> str:
    """Start a bare gunicorn "hello" app on the host; return the PID file to stop it with."""
    python = app_python(host)
    pid_file = "/run/bench-hello.pid"
    directory = "/run/bench-hello"
    script = (
        f"mkdir -p {directory} && cat > {directory}/bench_hello.py <<'EOF'\n{HELLO_APP}EOF\n"
        f"cd {directory} && setsid {python} -m gunicorn --chdir {directory} --daemon "
        f"--pid {pid_file} --workers 2 --worker-class gthread --threads 4 "
        f"--bind {bind}:{HELLO_PORT} bench_hello:app"
    )
    run(host, script)
    return pid_file


def stop_hello(host: str, pid_file: str) -> None:
    """Stop the "hello" app by the PID gunicorn wrote."""
    run(host, f"test -f {pid_file} && kill $(cat {pid_file}) || true")


# A keep-alive HTTP/1.1 load client run inside the host with the system Python (stdlib only),
# so that the app and "hello" are called the same way, over loopback, without nginx and TLS.
# argv: port path header requests concurrency; prints {"ok", "errors", "seconds", "status"}.
RATE_CLIENT = textwrap.dedent(
    """\
    import asyncio, json, sys, time
    port, path, header, total, concurrency = sys.argv[1:6]
    total, concurrency = int(total), int(concurrency)
    extra = f"{header}\\r\\n" if header else ""
    request = f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n{extra}\\r\\n".encode()
    left = [total]
    counts = {"ok": 0, "errors": 0, "status": ""}

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            status = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts["ok" if status == "200" else "errors"] += 1
            counts["status"] = counts["status"] or (status if status != "200" else "")
        writer.close()

    async def main():
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
        counts["seconds"] = time.perf_counter() - started
        print(json.dumps(counts))

    asyncio.run(main())
    """
)


def request_rate(
    host: str, port: int, path: str, header: str, requests: int, concurrency: int
) -> dict:
    """Send GET requests from inside the host to 127.0.0.1:port; return counts and req/s."""
    directory = "/run/bench-hello"
    command = (
        f"mkdir -p {directory} && cat > {directory}/rate_client.py <<'EOF'\n{RATE_CLIENT}EOF\n"
        f"python3 {directory}/rate_client.py {port} {shlex.quote(path)} {shlex.quote(header)} "
        f"{requests} {concurrency}"
    )
    result = json.loads(run(host, command, timeout=150).strip().splitlines()[-1])
    result["req_per_s"] = result["ok"] / result["seconds"] if result["seconds"] else 0.0
    return result
