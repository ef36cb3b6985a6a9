"""The gunicorn master's metrics hooks: a fresh start empties the directory, a re-exec keeps it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from webapp.gunicorn_hooks import on_starting

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
