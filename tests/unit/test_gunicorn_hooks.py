"""The gunicorn master's hooks: metrics (a fresh start empties the directory, a re-exec keeps
it), the release switch (the new master runs the new release and becomes the unit's main
process), and the deployed configuration that only passes values to them."""

from __future__ import annotations

import ast
import logging
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from gunicorn.config import Config

from webapp import gunicorn_hooks
from webapp.gunicorn_hooks import on_starting, start_from_release_link, when_ready

# What the hook needs of gunicorn's arbiter: its logger.
ARBITER = SimpleNamespace(log=logging.getLogger("test.gunicorn"))


@pytest.fixture
def multiproc_dir(tmp_path, monkeypatch):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_101.db").write_bytes(b"old counts")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    monkeypatch.delenv("GUNICORN_PID", raising=False)
    return directory


def test_a_fresh_start_empties_the_metrics_directory(multiproc_dir):
    on_starting(ARBITER)
    assert list(multiproc_dir.iterdir()) == []


def test_a_reexec_for_a_release_swap_keeps_the_counts(multiproc_dir, monkeypatch):
    monkeypatch.setenv("GUNICORN_PID", "4242")
    on_starting(ARBITER)
    assert [p.name for p in multiproc_dir.iterdir()] == ["counter_101.db"]


def test_without_a_metrics_directory_nothing_happens(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    keep = tmp_path / "counter_1.db"
    keep.write_bytes(b"x")
    on_starting(ARBITER)
    assert keep.exists()


# --- the zero-downtime release switch -----------------------------------------------------------


def _release(root: Path, name: str) -> Path:
    bin_dir = root / "releases" / name / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    return root / "releases" / name


def test_pre_exec_starts_the_new_master_from_where_current_points_now(tmp_path):
    old, new = _release(tmp_path, "r1"), _release(tmp_path, "r2")
    link = tmp_path / "current"
    link.symlink_to(old)
    hook = start_from_release_link(str(link))
    args = [f"{old}/venv/bin/python", f"{old}/venv/bin/gunicorn", "--config", "/etc/x.conf.py"]
    server = SimpleNamespace(START_CTX={0: args[0], "args": list(args), "cwd": str(old)})

    link.unlink()
    link.symlink_to(new)  # the switch
    hook(server)

    assert server.START_CTX[0] == f"{new}/venv/bin/python"
    assert server.START_CTX["args"] == [
        f"{new}/venv/bin/python",
        f"{new}/venv/bin/gunicorn",
        "--config",
        "/etc/x.conf.py",
    ]
    assert server.START_CTX["cwd"] == str(new)


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_a_master_started_by_a_reexec_tells_systemd_it_is_the_main_process(notify_socket):
    when_ready(SimpleNamespace(master_pid=4242, log=ARBITER.log))
    assert notify_socket.recv(1024) == f"MAINPID={os.getpid()}".encode()


def test_the_first_master_tells_systemd_nothing(notify_socket):
    when_ready(SimpleNamespace(master_pid=0, log=ARBITER.log))
    notify_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        notify_socket.recv(1024)


# --- the deployed configuration: values only ----------------------------------------------------

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "roles/app/templates/etc/chatbot/gunicorn.conf.py.j2"
)
TEMPLATE_VARS = {
    "ansible_managed": "Ansible managed",
    # The chat service's entry of the one service list (playbooks/vars/wiring.yml).
    "item": next(
        service
        for service in yaml.safe_load(
            (Path(__file__).resolve().parents[2] / "playbooks/vars/wiring.yml").read_text()
        )["app_services"]
        if service["name"] == "chat"
    ),
    "app_bind_address": "127.0.0.1",
    "app_gunicorn_timeout": 120,
    "app_gunicorn_graceful_timeout": 90,
    "app_forwarded_allow_ips": ["127.0.0.1", "10.0.0.5"],
    "app_log_level": "INFO",
    "app_root": "/opt/chatbot",
}


def _rendered() -> str:
    # Renders Python, not HTML: nothing to escape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701
    # Ansible's filter, as far as this template uses it.
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in text.splitlines())
    return env.from_string(TEMPLATE.read_text()).render(TEMPLATE_VARS)


def test_the_gunicorn_template_only_passes_values():
    tree = ast.parse(_rendered())
    # Imports and assignments of literals or of one call with literal arguments; no function,
    # class, condition or loop: logic belongs in webapp/gunicorn_hooks.py.
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        assert isinstance(node, ast.Assign), ast.dump(node)[:200]
        value = node.value
        if isinstance(value, ast.Call):
            assert isinstance(value.func, ast.Name), ast.dump(value)[:200]
            assert all(isinstance(arg, ast.Constant) for arg in value.args), ast.dump(value)
        else:
            assert isinstance(value, ast.Constant), ast.dump(value)[:200]


def test_the_rendered_configuration_is_valid_for_gunicorn_with_the_hooks():
    namespace: dict[str, object] = {}
    exec(compile(_rendered(), "gunicorn.conf.py", "exec"), namespace)  # noqa: S102 - our template
    config = Config()
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)  # runs gunicorn's validators (a hook's arity, types)
    assert config.on_starting is gunicorn_hooks.on_starting
    assert config.child_exit is gunicorn_hooks.child_exit
    assert config.when_ready is gunicorn_hooks.when_ready
    assert config.pre_exec.__qualname__ == "start_from_release_link.<locals>.pre_exec"
    assert config.bind == ["127.0.0.1:8002"]
    assert config.forwarded_allow_ips == ["127.0.0.1", "10.0.0.5"]
