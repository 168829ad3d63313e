"""One canonical form for usernames, used by every door that names an account.

Registration stores it, sign-in (`/auth/token`, JSON and form), the admin login and the
per-username rate-limit key all compute it with `canonical_username`, and the user lookup
compares it exactly (`username = <canonical>`): never `iexact`, because the database's idea of
case differs from Python's (PostgreSQL's UPPER maps "ı" to "I" and "ſ" to "S"; SQLite compares
only up to a NUL). Two spellings that reach one account therefore always share one budget.

The form is Unicode's NFKC_Casefold idea, done with the standard library: NFKC, case-fold,
NFKC again (case folding can un-normalise), surrounding whitespace stripped. Refused: empty
names, any "other" character (control, format, surrogate, private-use, unassigned: invisible or
meaningless in a name) and names longer than 150 characters *after* normalisation (one
"\ufdfa" becomes 18 characters).
"""

from __future__ import annotations

import re
import unicodedata

MAX_USERNAME_CHARS = 150
# What Django's UnicodeUsernameValidator allows, checked on the canonical form at registration.
_REGISTRABLE = re.compile(r"^[\w.@+-]+\Z")


class InvalidUsername(ValueError):
    """A username that has no canonical form. Its message is fit for the client."""


def username_fold(raw: str) -> str:
    """NFKC + case fold, without validation: what `User.normalize_username` stores and what the
    migration of existing rows computes."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    return folded.strip()


def canonical_username(raw: str) -> str:
    """The canonical form of `raw`, or InvalidUsername."""
    if not isinstance(raw, str):
        raise InvalidUsername("Username must be a string")
    for char in raw:
        if unicodedata.category(char).startswith("C"):
            raise InvalidUsername("Username must not contain control or unassigned characters")
    folded = username_fold(raw)
    if not folded:
        raise InvalidUsername("Username must not be empty")
    if len(folded) > MAX_USERNAME_CHARS:
        raise InvalidUsername(
            f"Username must be at most {MAX_USERNAME_CHARS} characters once normalised"
        )
    for char in folded:  # NFKC can introduce none of these, but say so rather than assume
        if unicodedata.category(char).startswith("C"):
            raise InvalidUsername("Username must not contain control or unassigned characters")
    return folded


def canonical_username_or_none(raw: str | None) -> str | None:
    try:
        return canonical_username(raw or "")
    except InvalidUsername:
        return None


def registrable_username(raw: str) -> str:
    """The canonical form of a new account's name: also letters, digits and @ . + - _ only,
    checked after normalisation (NFKC can introduce spaces)."""
    canonical = canonical_username(raw)
    if not _REGISTRABLE.match(canonical):
        raise InvalidUsername(
            "Username may contain only letters, digits and @ . + - _ once normalised"
        )
    return canonical
