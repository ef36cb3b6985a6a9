#!/usr/bin/env python3
"""Poll the services' ``/ready`` without pause and count every answer that is not ready.

Run it on an app host (the services listen on its loopback or private address; it needs only
Python's standard library) while an operation runs that must not disturb them, e.g. site.yml
from a second checkout::

    python3 ready_watch.py --url http://127.0.0.1:8001/ready --url http://127.0.0.1:8002/ready \\
        --stop-file /tmp/stop --ready-file /tmp/ready --report /tmp/report.json

An answer is ready when it is HTTP 200 with ``"status": "ok"``; anything else (503 "Redis
unavailable", a refused connection, a timeout) counts as not ready. The ready file is written
once every URL has answered ready. The run is bounded: it stops when the stop file appears,
after --duration seconds or after --max-polls rounds. Exit status: 0 when every URL was polled
and every answer was ready, 1 otherwise, 2 on bad usage. The report (JSON) holds the counts per
URL and the first failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MAX_REPORTED_FAILURES = 50


def poll(url: str, timeout: float) -> str | None:
    """GET url once; return None when it answers ready, else what it answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http only)
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        state = json.loads(body).get("status")
    except (ValueError, AttributeError):
        state = None
    if status == 200 and state == "ok":
        return None
    return f"HTTP {status}: {body[:200].decode(errors='replace')}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Poll every URL in turn until told to stop; return the report."""
    polls = dict.fromkeys(args.url, 0)
    not_ready = dict.fromkeys(args.url, 0)
    failures: list[dict[str, str]] = []
    stop_file = Path(args.stop_file)
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    stopped_by = "max polls"
    announced = False
    for _ in range(args.max_polls):
        if stop_file.exists():
            stopped_by = "stop file"
            break
        if time.monotonic() >= deadline:
            stopped_by = "duration"
            break
        for url in args.url:
            error = poll(url, args.timeout)
            polls[url] += 1
            if error is not None:
                not_ready[url] += 1
                if len(failures) < MAX_REPORTED_FAILURES:
                    failures.append({"url": url, "at": time.strftime("%H:%M:%S"), "error": error})
        if not announced and args.ready_file and sum(not_ready.values()) == 0:
            Path(args.ready_file).write_text("every service ready\n", encoding="utf-8")
            announced = True
        time.sleep(args.pause)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "stopped_by": stopped_by,
        "polls": polls,
        "not_ready": not_ready,
        "failures": failures,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="a /ready URL (repeat)")
    parser.add_argument("--stop-file", required=True, help="stop once this file exists")
    parser.add_argument("--ready-file", help="written once every URL has answered ready")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--duration", type=float, default=900, help="upper bound, seconds")
    parser.add_argument("--max-polls", type=int, default=100000, help="upper bound, rounds")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=5, help="seconds per request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the watch, write the report, exit 0 only when every answer was ready."""
    args = parse_args(argv)
    report = run(args)
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    every_url_polled = all(count > 0 for count in report["polls"].values())
    return 0 if every_url_polled and sum(report["not_ready"].values()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
