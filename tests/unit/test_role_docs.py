"""Each role's ``meta/argument_specs.yml`` is the home of its variables' documentation.

The README's variable table is generated from it (``tools/role-docs.py``) and must be committed
up to date; ``defaults/main.yml`` must hold exactly the options that have a default, with the
same value.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("role_docs", ROOT / "tools" / "role-docs.py")
role_docs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(role_docs)

ROLE_DIRS = role_docs.role_dirs(ROOT)
ROLE_NAMES = [path.name for path in ROLE_DIRS]


def test_every_role_has_a_spec():
    assert sorted(ROLE_NAMES) == sorted(path.parent.name for path in ROOT.glob("roles/*/tasks"))


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=ROLE_NAMES)
def test_readme_variable_table_is_generated_from_the_spec(role_dir):
    readme = (role_dir / "README.md").read_text()
    assert readme == role_docs.generated_readme(role_dir), (
        f"{role_dir.name}/README.md differs from its meta/argument_specs.yml:"
        " run tools/role-docs.py and commit the result"
    )


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=ROLE_NAMES)
def test_defaults_are_the_spec_defaults(role_dir):
    defaults: dict[str, Any] = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text())
    options = role_docs.spec_options(role_dir)
    with_default = {name: o["default"] for name, o in options.items() if "default" in o}
    assert set(defaults) - set(options) == set(), "defaults/main.yml variables without a spec"
    assert {name: defaults.get(name) for name in with_default} == with_default
    assert set(defaults) == set(with_default), "a default in defaults/main.yml, none in the spec"


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=ROLE_NAMES)
def test_entry_points_agree_on_shared_options(role_dir):
    seen: dict[str, dict[str, Any]] = {}
    for entry_point in role_docs.entry_points(role_dir).values():
        for name, option in entry_point.get("options", {}).items():
            first = seen.setdefault(name, option)
            assert (first.get("type"), first.get("default")) == (
                option.get("type"),
                option.get("default"),
            ), name


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=ROLE_NAMES)
def test_every_option_has_a_type_and_a_description(role_dir):
    for name, option in role_docs.spec_options(role_dir).items():
        assert option.get("type"), name
        assert option.get("description"), name


def test_generated_table_shows_what_the_spec_says(tmp_path):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump(
            {
                "argument_specs": {
                    "main": {
                        "options": {
                            "demo_mode": {
                                "type": "str",
                                "default": "a",
                                "choices": ["a", "b"],
                                "description": ["Mode, see C(demo_mode) | docs."],
                            },
                            "demo_password": {"type": "str", "required": True, "description": "P"},
                            "demo_hosts": {
                                "type": "list",
                                "elements": "str",
                                "default": ["::1"],
                                "description": "H",
                            },
                            "demo_enabled": {"type": "bool", "default": True, "description": "E"},
                        }
                    }
                }
            },
            sort_keys=False,
        )
    )
    (role / "README.md").write_text(f"# demo\n\n{role_docs.START}\nold\n{role_docs.END}\n\nmore\n")
    assert role_docs.generated_readme(role) == (
        f"# demo\n\n{role_docs.START}\n{role_docs.HEADER}"
        "| `demo_mode` | str | `a` | Mode, see `demo_mode` \\| docs. One of: `a`, `b`. |\n"
        "| `demo_password` | str | **required** | P |\n"
        '| `demo_hosts` | list of str | `["::1"]` | H |\n'
        "| `demo_enabled` | bool | `true` | E |\n"
        f"{role_docs.END}\n\nmore\n"
    )


def test_check_mode_reports_a_stale_readme(tmp_path, monkeypatch, capsys):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {demo_x: {type: int, default: 1, description: X}}}}\n"
    )
    readme = f"{role_docs.START}\n{role_docs.END}\n"
    (role / "README.md").write_text(readme)
    monkeypatch.setattr(role_docs, "ROOT", tmp_path)
    monkeypatch.setattr(role_docs, "role_dirs", lambda root=tmp_path: [role])
    assert role_docs.main(["--check"]) == 1
    assert (role / "README.md").read_text() == readme
    assert "roles/demo/README.md: is stale" in capsys.readouterr().err
    assert role_docs.main([]) == 0
    assert role_docs.main(["--check"]) == 0
