#!/usr/bin/env python3
"""Write each role README's variable table from the role's ``meta/argument_specs.yml``.

The spec is the one home of a role variable's type, default and description (``ansible-doc``
and argument validation read it too); the README table between the markers below is generated
from it::

    <!-- role-docs: variables start -->
    ...
    <!-- role-docs: variables end -->

Usage: ``tools/role-docs.py`` rewrites every ``roles/*/README.md``; ``--check`` changes nothing
and exits 1 naming each README that differs (``tests/unit/test_role_docs.py`` runs the same
check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- role-docs: variables start -->"
END = "<!-- role-docs: variables end -->"
HEADER = "| Variable | Type | Default | Description |\n| --- | --- | --- | --- |\n"
# A default longer than this is not inlined: the table points to defaults/main.yml.
MAX_INLINE_DEFAULT = 70


def role_dirs(root: Path = ROOT) -> list[Path]:
    """Return the directories of the roles that have an argument spec, sorted by name."""
    return sorted(path.parent.parent for path in root.glob("roles/*/meta/argument_specs.yml"))


def entry_points(role_dir: Path) -> dict[str, dict[str, Any]]:
    """Return the role's entry points (``main``, and e.g. ``restore``) from its argument spec."""
    spec = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]


def spec_options(role_dir: Path) -> dict[str, dict[str, Any]]:
    """Return the options of every entry point, in the spec's order, each once.

    An option several entry points share is documented as the first one declares it
    (``tests/unit/test_role_docs.py`` checks that they agree on its default).
    """
    options: dict[str, dict[str, Any]] = {}
    for entry_point in entry_points(role_dir).values():
        for name, option in entry_point.get("options", {}).items():
            options.setdefault(name, option)
    return options


# ansible-doc markup (C(code), O(option), V(value), I(italic), B(bold), U(url), L(text,url)).
_CODE_MARKUP = re.compile(r"\b[COVE]\(([^()]*)\)")
_MARKUP = (
    (_CODE_MARKUP, r"`\1`"),
    (re.compile(r"\bI\(([^()]*)\)"), r"*\1*"),
    (re.compile(r"\bB\(([^()]*)\)"), r"**\1**"),
    (re.compile(r"\bU\(([^()]*)\)"), r"<\1>"),
    (re.compile(r"\bL\(([^(),]*),\s*([^()]*)\)"), r"[\1](\2)"),
)


def _markdown(text: str) -> str:
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def _cell(text: str) -> str:
    # A pipe splits a Markdown table cell even inside a code span.
    return " ".join(text.split()).replace("|", "\\|")


def render_default(option: dict[str, Any]) -> str:
    """Return the Markdown of an option's default (empty when it has none)."""
    if "default" not in option:
        return "**required**" if option.get("required") else ""
    value = option["default"]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value if value else '""'
    else:
        # JSON is YAML, and quotes every string (unlike YAML's flow style).
        text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | dict) and len(text) > MAX_INLINE_DEFAULT:
        count = len(value)
        noun = "entries" if isinstance(value, list) else "keys"
        return f"{count} {noun}, see `defaults/main.yml`"
    return f"`{_cell(text)}`"


def render_type(option: dict[str, Any]) -> str:
    """Return an option's type, with the type of its elements for a list."""
    kind = option.get("type", "str")
    if kind == "list" and "elements" in option:
        return f"list of {option['elements']}"
    return kind


def render_description(option: dict[str, Any]) -> str:
    """Return an option's description on one line in Markdown, with its choices."""
    description = option.get("description", "")
    if isinstance(description, list):
        description = " ".join(description)
    parts = [description.strip()]
    if option.get("choices"):
        parts.append("One of: " + ", ".join(f"`{choice}`" for choice in option["choices"]) + ".")
    return _cell(_markdown(" ".join(part for part in parts if part)))


def render_table(role_dir: Path) -> str:
    """Return the variable table of a role, markers included."""
    rows = [
        f"| `{name}` | {render_type(option)} | {render_default(option)} |"
        f" {render_description(option)} |\n"
        for name, option in spec_options(role_dir).items()
    ]
    return f"{START}\n{HEADER}{''.join(rows)}{END}"


def generated_readme(role_dir: Path) -> str:
    """Return the role's README with its variable table regenerated.

    Raises:
        ValueError: If the README lacks the markers.
    """
    readme = (role_dir / "README.md").read_text()
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        msg = f"{role_dir / 'README.md'}: no {START} ... {END} markers"
        raise ValueError(msg)
    return readme[:start] + render_table(role_dir) + readme[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` compare) every role README's variable table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for role_dir in role_dirs():
        path = role_dir / "README.md"
        text = generated_readme(role_dir)
        if text != path.read_text():
            stale.append(path)
            if not args.check:
                path.write_text(text)
    for path in stale:
        verb = "is stale (run tools/role-docs.py)" if args.check else "rewritten"
        print(f"{path.relative_to(ROOT)}: {verb}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
