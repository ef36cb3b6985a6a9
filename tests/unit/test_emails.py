"""The canonical form of e-mail addresses (webapp.emails)."""

from __future__ import annotations

import pytest

from webapp.emails import canonical_email, email_problem

FULL_WIDTH_ADMIN = "\uff41\uff44\uff4d\uff49\uff4e@example.com"


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        (FULL_WIDTH_ADMIN, "admin@example.com"),
        (
            "\uff41\uff44\uff4d\uff49\uff4e\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
            "admin@example.com",
        ),
        ("  Admin@EXAMPLE.com ", "admin@example.com"),
        ("admin@XN--exmple-cua.com", "admin@ex\u00e4mple.com"),
        ("admin@EX\u00c4MPLE.com", "admin@ex\u00e4mple.com"),
        # A zero-width space in the domain is dropped by nameprep.
        ("admin@exam\u200bple.com", "admin@example.com"),
        # The local part is lower-cased, not case-folded: this is still the mailbox typed.
        ("Stra\u00dfe@example.com", "stra\u00dfe@example.com"),
        ("\ufb01le@example.com", "file@example.com"),
        ("no at sign", "no at sign"),
    ],
)
def test_look_alike_spellings_have_one_canonical_form(typed, canonical):
    assert canonical_email(typed) == canonical
    assert canonical_email(canonical) == canonical


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("ad\u200bmin@example.com", "invisible"),
        ("ad\u202emin@example.com", "invisible"),
        ("ad\u00a0min@example.com", "spaces"),
        ("admin@" + "a" * 64 + ".com", "invalid domain"),
        ("admin@example..com", "invalid domain"),
    ],
)
def test_addresses_that_could_hide_a_difference_are_refused(address, problem):
    message = email_problem(canonical_email(address))
    assert message is not None
    assert problem in message


def test_an_ordinary_address_has_no_problem():
    assert email_problem(canonical_email("Alice.Smith+chat@mail.example.org")) is None
