"""The LiteLLM proxy the benchmark compares with, in front of the same test model server.

tools/bench.sh installs the pinned LiteLLM (``LITELLM_VERSION``) into build/litellm-venv; this
module writes its configuration (one model, ``bench``, pointing at the test model server; a
master key; no database), starts it on the controller's loopback with 2 workers, and reads the
CPU time of its process tree from /proc.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LITELLM_VERSION = "1.108.7"
WORKERS = 2
CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {model_url}
      api_key: not-needed
general_settings:
  master_key: {master_key}
"""


def process_tree_cpu_seconds(root_pid: int) -> float:
    """Return the CPU seconds (user + system) of a process and all its descendants, alive now."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = int(fields[11]) + int(fields[12])
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


class LiteLLMProxy:
    """A LiteLLM proxy process (and its workers), started and stopped by the benchmark."""

    def __init__(self, executable: Path, model: str, model_url: str, port: int) -> None:
        """Remember how to start it: the ``litellm`` script, the model and where it answers."""
        self.executable = executable
        self.model = model
        self.model_url = model_url
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.master_key = f"sk-bench-{secrets.token_hex(12)}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = ROOT / "build/litellm.log"

    def __enter__(self) -> LiteLLMProxy:
        """Start the proxy and wait (bounded) until it answers."""
        config = ROOT / "build/litellm-config.yaml"
        config.write_text(
            CONFIG.format(model=self.model, model_url=self.model_url, master_key=self.master_key)
        )
        env = dict(os.environ)
        # No network here: the bundled model price list instead of fetching it, no telemetry.
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
        env.pop("DATABASE_URL", None)
        argv = [
            str(self.executable), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(self.port), "--num_workers", str(WORKERS),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            # Its own session: stopping the benchmark's proxy stops its workers and nothing else.
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/health/liveliness", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.5)
        self.__exit__()
        msg = f"LiteLLM did not answer at {self.url} within 180 s; see {self.log_path}"
        raise RuntimeError(msg)

    def __exit__(self, *_exc: object) -> None:
        """Stop the proxy and its workers: the process group this benchmark started."""
        if self.process is None:
            return
        # The group outlives its leader if a worker is left: signal the group either way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def cpu_seconds(self) -> float | None:
        """Return the CPU seconds the proxy's processes used so far."""
        return process_tree_cpu_seconds(self.process.pid) if self.process else None
