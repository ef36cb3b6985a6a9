"""The app role reads from ``chatbot catalogue``'s output whether it changed anything.

``roles/app/tasks/catalogue.yml`` reports the seed *changed* when its output matches
``__app_catalogue_seed_changed`` (``roles/app/vars/main.yml``; Ansible's ``regex`` test is
``re.search``), and ``rekey.yml`` unless the rekey's matches ``__app_rekey_unchanged`` (a count
of 0). Molecule's
idempotence check needs a second seed of the same file to be no change. The outputs below are
those ``webapp/catalogue_commands.py`` prints (``SeedSummary`` of
``webapp/services/catalogue_seed.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE_VARS = yaml.safe_load((ROOT / "roles" / "app" / "vars" / "main.yml").read_text())
SEED_CHANGED = ROLE_VARS["__app_catalogue_seed_changed"]
REKEY_UNCHANGED = ROLE_VARS["__app_rekey_unchanged"]
FILE = "/etc/chatbot/catalogue.json"


def seed_output(providers: tuple[int, int, int], models: tuple[int, int, int]) -> str:
    """Return the seed's line for these (created, updated, unchanged) counts."""
    words = ("created", "updated", "unchanged")
    parts = [
        f"{kind}: " + ", ".join(f"{n} {word}" for n, word in zip(counts, words, strict=True))
        for kind, counts in (("providers", providers), ("models", models))
    ]
    return f"Catalogue seeded from {FILE}: {'; '.join(parts)}.\n"


@pytest.mark.parametrize(
    ("providers", "models"),
    [
        ((1, 0, 0), (0, 0, 0)),
        ((0, 0, 1), (2, 0, 0)),
        ((0, 1, 0), (0, 0, 3)),
        ((0, 0, 1), (0, 10, 0)),
    ],
)
def test_a_seed_that_created_or_updated_an_entry_is_a_change(providers, models):
    assert re.search(SEED_CHANGED, seed_output(providers, models))


@pytest.mark.parametrize(("providers", "models"), [((0, 0, 0), (0, 0, 0)), ((0, 0, 2), (0, 0, 11))])
def test_a_seed_that_left_everything_as_it_was_is_no_change(providers, models):
    assert not re.search(SEED_CHANGED, seed_output(providers, models))


def test_entry_lines_are_read_too():
    assert re.search(SEED_CHANGED, "created provider vllm\nunchanged model x\n")
    assert re.search(SEED_CHANGED, "model x: updated\n")
    assert not re.search(SEED_CHANGED, "unchanged model x\nkept model y (changed by an admin)\n")


@pytest.mark.parametrize(("count", "changed"), [(0, False), (1, True), (10, True), (20, True)])
def test_rekey_is_a_change_when_it_re_encrypted_a_key(count, changed):
    stdout = f"Re-encrypted {count} provider key(s) with the first PROVIDER_KEY_SECRETS key.\n"
    assert (re.search(REKEY_UNCHANGED, stdout) is None) is changed
