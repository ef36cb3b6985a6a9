"""The app role's defaults and the README are checked against the one home of each default.

``webapp/settings.py`` holds every app setting's default; ``roles/app/defaults/main.yml``
repeats some of them as ``app_*`` variables (so the env file is complete and ``ansible-doc``
shows them) and ``roles/app/vars/main.yml`` maps those to the environment. Here the role's
defaults are rendered through that mapping, as the env file gets them, and read by
``Settings.from_env``: each must give the app's own default. Likewise the names, ports and WSGI
modules of ``app_services`` (``playbooks/vars/wiring.yml``) must be
``webapp.services_list.SERVICES``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from webapp.services_list import SERVICE_NAMES, SERVICES
from webapp.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "app"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
WIRING: dict[str, Any] = yaml.safe_load((ROOT / "playbooks" / "vars" / "wiring.yml").read_text())
ROLE_VARS: dict[str, Any] = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
# ENV name -> the Jinja expression the env file template writes for it.
MAPPING: dict[str, str] = ROLE_VARS["__app_environment_base"]

# Required by the app (no default): the playbook wires them (playbooks/vars/wiring.yml), the
# role's default is empty so that a forgotten one stops the service with a message naming it.
WIRED_REQUIRED = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
# Settings the role does not write, so the app's own default applies; operators set them
# through app_environment_extra (README: "Role variable | Environment | Default").
NOT_SET_BY_ROLE = {
    "LLM_DAILY_TOKEN_QUOTA",
    "LLM_MAX_CONCURRENT_REPLIES",
    "REPLY_STREAM_TTL",
    "LOGIN_RATE_LIMIT",
    "REGISTER_RATE_LIMIT",
    "TRUSTED_PROXY_COUNT",
}
SETTING_FIELDS = {env_name(f.name): f for f in dataclasses.fields(Settings)}
MINIMAL = {
    "DATABASE_URL": "postgresql://app:password@127.0.0.1:1/chatbot",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "k" * 32,
}


def _render(expression: str, context: dict[str, Any]) -> str:
    """Render one role variable the way Ansible does (its ``zip`` filter included)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    env.filters["zip"] = lambda first, *others: list(zip(first, *others, strict=False))
    return env.from_string(expression).render(context)


def role_environment() -> dict[str, str]:
    """Return the env file the role writes with its defaults (the secrets as given in MINIMAL)."""
    context = {**DEFAULTS, "app_services": WIRING["app_services"]}
    context["__app_status_host"] = _render(ROLE_VARS["__app_status_host"], context)
    rendered = {name: _render(expression, context).strip() for name, expression in MAPPING.items()}
    return {**rendered, **MINIMAL}


def test_every_setting_is_mapped_by_the_role_or_listed_as_not_set():
    mapped = set(MAPPING)
    assert not mapped & NOT_SET_BY_ROLE, "a setting cannot be both mapped and not set"
    assert mapped | NOT_SET_BY_ROLE == set(SETTING_FIELDS), (
        "every Settings field must be written by roles/app/vars/main.yml or listed in"
        " NOT_SET_BY_ROLE; unknown names in the role are typos the app would ignore"
    )


@pytest.mark.parametrize("name", sorted(set(MAPPING) - WIRED_REQUIRED))
def test_role_default_gives_the_app_default(name):
    setting = SETTING_FIELDS[name]
    from_role = Settings.from_env(role_environment())
    assert getattr(from_role, setting.name) == setting.default, (
        f"roles/app/defaults/main.yml gives {name}={role_environment()[name]!r}; the app's"
        f" default (webapp/settings.py) is {setting.default!r}"
    )


@pytest.mark.parametrize("name", sorted(WIRED_REQUIRED))
def test_required_settings_have_no_default_in_the_app_and_an_empty_one_in_the_role(name):
    assert SETTING_FIELDS[name].default is dataclasses.MISSING
    variable = re.fullmatch(r"\{\{ (app_\w+) \}\}", MAPPING[name]).group(1)
    assert DEFAULTS[variable] == ""


def test_app_services_are_the_python_service_list():
    # The Ansible list also carries nginx's locations and gunicorn's workers and threads; names,
    # ports and WSGI modules are shared.
    assert [(s["name"], s["port"], s["module"]) for s in WIRING["app_services"]] == [
        (s.name, s.port, s.wsgi_module) for s in SERVICES
    ]


def test_app_services_spec_allows_exactly_the_python_service_names():
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    option = spec["argument_specs"]["main"]["options"]["app_services"]
    assert tuple(option["options"]["name"]["choices"]) == SERVICE_NAMES


# --- The README's settings table (README.md, "Role variable | Environment | Default") ---------

README = (ROOT / "README.md").read_text()
_TABLE = re.search(
    r"^\| Role variable \| Environment \| Default \|\n\|[-|]+\|\n((?:\|.*\n)+)", README, re.M
)
README_ROWS = [
    [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    for line in _TABLE.group(1).splitlines()
]
_CODE = re.compile(r"`([^`]+)`")


def _documented_default_matches(text: str, default: Any) -> bool:
    if text.startswith(("empty", "none")):
        return default in ("", ())
    if text.startswith("`"):
        return text.strip("`") == str(default)
    return float(text) == default


def test_readme_names_every_setting():
    documented = {name for row in README_ROWS for name in _CODE.findall(row[1])}
    assert set(SETTING_FIELDS) <= documented


def test_readme_maps_role_variables_as_the_role_does():
    for variables, names, _ in README_ROWS:
        if variables == "(wired)" or variables == "`app_environment_extra`":
            continue
        role_variables = _CODE.findall(variables)
        for variable, name in zip(role_variables, _CODE.findall(names), strict=True):
            assert re.match(r"\{\{ " + variable + r"\b", MAPPING[name]), (variable, name)


def test_readme_defaults_are_the_settings_defaults():
    checked = 0
    for variables, names, defaults in README_ROWS:
        if variables == "(wired)":
            continue
        if variables == "`app_environment_extra`":
            # "`LLM_DAILY_TOKEN_QUOTA` (200000; 0 = none)": the default in brackets.
            for name, number in re.findall(r"`([A-Z_]+)` \((\d+)", names):
                assert SETTING_FIELDS[name].default == int(number), name
                checked += 1
            continue
        envs = _CODE.findall(names)
        texts = defaults.split(", ")
        texts = texts if len(texts) == len(envs) else [defaults] * len(envs)
        for name, text in zip(envs, texts, strict=True):
            assert _documented_default_matches(text, SETTING_FIELDS[name].default), (name, text)
            checked += 1
    assert checked >= 20


# --- Defaults quoted in docs/*.md and README.md ------------------------------------------------

_QUOTED_DEFAULT = re.compile(
    r"^\| `(?P<table>[A-Z_]+)` \| (?P<cell>[^|]+?) \|"  # | `NAME` | 200000 | ... (a settings table)
    # `NAME` (`10 per minute`), not `NAME` (`app_variable`)
    r"|`(?P<code>[A-Z_]+)` \((?P<value>`(?!app_)[^`]+`)\)"
    r"|`(?P<prose>[A-Z_]+)` \(default (?P<number>[\d.]+)",  # `NAME` (default 200000, ...)
    re.M,
)


def quoted_defaults() -> list[tuple[str, str, str]]:
    """Return (file, variable, documented default) for each default the docs quote."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in _QUOTED_DEFAULT.finditer(path.read_text()):
            name = match["table"] or match["code"] or match["prose"]
            text = match["cell"] or match["value"] or match["number"]
            if name in SETTING_FIELDS:
                found.append((path.name, name, text.strip()))
    return found


def test_defaults_quoted_in_the_docs_are_the_settings_defaults():
    quoted = quoted_defaults()
    assert len(quoted) >= 6  # docs/replies.md's table, docs/security.md's rate limits
    for file, name, text in quoted:
        assert _documented_default_matches(text, SETTING_FIELDS[name].default), (file, name, text)
