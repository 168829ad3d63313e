"""What a user may change about themselves outside the API: the display name operators show
customers (accounts.User.display_name)."""

from __future__ import annotations

import unicodedata

from accounts.models import User
from accounts.operators import is_operator

MAX_DISPLAY_NAME_CHARS = 60


def clean_display_name(value: str) -> str:
    """Trimmed, one line, no control or format characters (no bidi tricks in a name shown to
    customers); empty means "use my first name". Raises ValueError with a message for the user."""
    name = " ".join(value.split())
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        raise ValueError(f"A display name has at most {MAX_DISPLAY_NAME_CHARS} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in name):
        raise ValueError("A display name cannot contain control or invisible characters.")
    return name


def display_name_set(*, user: User, name: str) -> User:
    """Operators set their own display name. Raises PermissionError for anyone else, ValueError
    for a name that does not pass clean_display_name."""
    if not is_operator(user):
        raise PermissionError("Only operators have a display name")
    user.display_name = clean_display_name(name)
    user.save(update_fields=["display_name"])
    return user
