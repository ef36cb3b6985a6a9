"""The dependency locks agree with pyproject.toml, and the release name follows the runtime lock."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), ROOT / "tools" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_for_target = _tool("lock-for-target.py")


def _pins(lock: Path) -> dict[str, set[str]]:
    """Map each package of a lock to the versions it pins (one per environment marker fork)."""
    pins: dict[str, set[str]] = {}
    for text, _ in lock_for_target.lock_entries(lock.read_text(encoding="utf-8")):
        requirement = Requirement(text)
        (version,) = (spec.version for spec in requirement.specifier)
        pins.setdefault(canonicalize_name(requirement.name), set()).add(version)
    return pins


def _direct(group: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if group == "runtime":
        lines = project["dependencies"]
    else:
        lines = project["optional-dependencies"][group]
    direct = {}
    for line in lines:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line}: direct dependencies are pinned with =="
        direct[canonicalize_name(requirement.name)] = spec.version
    return direct


@pytest.mark.parametrize(
    ("lock", "groups"), [(RUNTIME_LOCK, ["runtime"]), (DEV_LOCK, ["runtime", "dev"])]
)
def test_lock_holds_every_direct_pin_of_pyproject(lock: Path, groups: list[str]) -> None:
    pins = _pins(lock)
    for group in groups:
        for name, version in _direct(group).items():
            assert pins.get(name) == {version}, (
                f"pyproject.toml pins {name}=={version}, {lock.name} has {pins.get(name)}: "
                "run tools/lock.sh"
            )


def test_dev_lock_runs_the_versions_that_ship() -> None:
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    differing = {name: (versions, dev.get(name)) for name, versions in runtime.items()}
    assert {n: v for n, v in differing.items() if v[0] != v[1]} == {}


def test_lock_entries_refuse_an_entry_without_hash() -> None:
    with pytest.raises(ValueError, match="no-hash"):
        lock_for_target.lock_entries("no-hash==1.0\n    # via something\n")


def test_lock_for_target_evaluates_markers_for_the_target_not_the_controller() -> None:
    text = RUNTIME_LOCK.read_text(encoding="utf-8")
    entries = lock_for_target.lock_entries(text)

    def names(python: str, arch: str) -> set[str]:
        environment = lock_for_target.target_environment(python, arch)
        return {
            canonicalize_name(Requirement(t).name)
            for t, _ in entries
            if Requirement(t).marker is None or Requirement(t).marker.evaluate(environment)
        }

    debian12 = names("3.11.2", "x86_64")
    # redis needs async-timeout below 3.11.3 only; Windows-only packages never reach a host.
    assert "async-timeout" in debian12
    assert "async-timeout" not in names("3.11.7", "x86_64")
    assert "tzdata" not in debian12
    assert set(_direct("runtime")) <= debian12
    assert set(_direct("runtime")) <= names("3.11.2", "aarch64")


def _tree(where: Path) -> Path:
    """Copy what the release name covers into a throwaway source tree."""
    (where / "webapp").mkdir(parents=True)
    (where / "webapp" / "__init__.py").write_text('"""A stand-in package."""\n')
    (where / "requirements").mkdir()
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    shutil.copy(RUNTIME_LOCK, where / "requirements" / "runtime.lock")
    (where / "tools").mkdir()
    for tool in ("build-wheelhouse.sh", "lock-for-target.py"):
        shutil.copy(ROOT / "tools" / tool, where / "tools" / tool)
    return where


def _release_id(tree: Path) -> str:
    return subprocess.run(
        [ROOT / "tools" / "release-id.sh", tree], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_release_id_is_the_same_for_the_same_tree(tmp_path: Path) -> None:
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    (second / "webapp" / "__pycache__").mkdir()
    (second / "webapp" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _release_id(first) == _release_id(second)
    assert _release_id(first).startswith(f"{version}-")


def test_release_id_changes_with_one_transitive_pin(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    before = _release_id(tree)
    lock = tree / "requirements" / "runtime.lock"
    text = lock.read_text()
    direct = set(_direct("runtime"))
    transitive = next(
        entry
        for entry, _ in lock_for_target.lock_entries(text)
        if canonicalize_name(entry.split("==")[0]) not in direct
    )
    pin = transitive.split(" ;")[0]
    assert f"\n{pin} " in text
    lock.write_text(text.replace(f"\n{pin} ", f"\n{pin}.post1 ", 1))
    assert _release_id(tree) != before


@pytest.mark.parametrize("changed", ["webapp/extra.py", "tools/build-wheelhouse.sh"])
def test_release_id_changes_with_the_code_and_the_recipe(tmp_path: Path, changed: str) -> None:
    tree = _tree(tmp_path / "tree")
    before = _release_id(tree)
    with (tree / changed).open("a") as file:
        file.write("# changed\n")
    assert _release_id(tree) != before
