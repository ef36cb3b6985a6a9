"""The canonical form of an e-mail address: one account per address, however it is typed.

Plain Python with no Flask imports, used wherever an address arrives (registration, login, the
rate limits, the audit log, the CLI) and by the migration that normalised stored addresses.

The rule, applied to the whole address and then to each part:

- Unicode NFKC: compatibility forms become their plain letters, so ``admin@example.com`` typed
  in full-width letters (U+FF41...) *is* ``admin@example.com`` and collides with it, instead of
  being a second account that looks the same;
- the domain (after the last ``@``) goes through IDNA's nameprep, which case-folds it and drops
  invisible characters; an ``xn--`` label is decoded, so both spellings of a domain agree;
- the local part is lower-cased. RFC 5321 lets a server treat case as significant, but no
  mainstream provider does, and two accounts differing only in case would be look-alikes;
  lower-casing (not case-folding, which turns ``ß`` into ``ss``) keeps the address deliverable;
- :func:`email_problem` refuses what would still allow an invisible difference: control,
  format (zero-width joiners), unassigned or private-use characters and spaces.

What this does not catch: letters of different scripts that look alike (Cyrillic U+0430 for
Latin ``a``). Those are not compatibility equivalents; refusing them needs the Unicode
confusables data.
"""

from __future__ import annotations

import unicodedata

__all__ = ["canonical_email", "email_problem"]

# Categories of characters that cannot be seen or told apart: controls, format characters
# (zero-width space and joiners, bidi overrides), surrogates, private use, unassigned, spaces.
_INVISIBLE_CATEGORIES = ("C", "Z")


def _canonical_domain(domain: str) -> str | None:
    try:
        # The idna codec (IDNA 2003) runs nameprep (NFKC, case folding, zero-width removal) on
        # labels that are not ASCII only; ASCII ones are case-folded here.
        return domain.casefold().encode("idna").decode("idna")
    except UnicodeError:
        return None


def canonical_email(address: str) -> str:
    """Return the canonical form of an address as typed (see the module docstring).

    Never raises: for a lookup or a rate-limit key, text that is no valid address still gets
    a stable form (its domain case-folded instead of nameprepped).

    Args:
        address: The address as typed.

    Returns:
        The canonical form, to store and to compare.
    """
    value = unicodedata.normalize("NFKC", address).strip()
    local, at, domain = value.rpartition("@")
    if not at:
        return value.lower()
    return f"{local.lower()}@{_canonical_domain(domain) or domain.casefold()}"


def email_problem(address: str) -> str | None:
    """Say what keeps a canonical address from being stored, if anything.

    Args:
        address: The result of :func:`canonical_email`.

    Returns:
        A message for the client, or None if the characters are acceptable.
    """
    if any(unicodedata.category(c)[0] in _INVISIBLE_CATEGORIES for c in address):
        return "email must not contain spaces, control or invisible characters"
    domain = address.rpartition("@")[2]
    if _canonical_domain(domain) is None:
        return "email has an invalid domain"
    return None
