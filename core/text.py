"""One text rule for every string Parley accepts: REST fields, headers, websocket frames, admin.

A string is *storable* when it holds no control character other than newline, carriage return
and tab (NUL above all: PostgreSQL refuses it in text, SQLite silently truncates comparisons at
it), no lone surrogate (not encodable as UTF-8), and no unassigned code point (including the
noncharacters U+FFFE/U+FFFF): characters nobody can have typed, whose meaning a later Unicode
version may change under us. Schemas apply `ensure_storable` to every string field
(config/schemas.CheckedSchema); message text additionally goes through `clean_text`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_MESSAGE_CHARS = 4000

_ALLOWED_CONTROLS = frozenset("\n\t\r")
_ASCII_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEVER_STORABLE = frozenset(("Cc", "Cs", "Cn"))


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be accepted, or None when it can. Fast for ASCII."""
    if text.isascii():
        return "control characters" if _ASCII_FORBIDDEN.search(text) else None
    for char in text:
        category = unicodedata.category(char)
        if category in _NEVER_STORABLE and char not in _ALLOWED_CONTROLS:
            if category == "Cc":
                return "control characters"
            if category == "Cs":
                return "lone surrogates"
            return "unassigned characters"
    return None


def ensure_storable(text: str, *, what: str = "Text") -> str:
    """`text` unchanged, or ValueError with a message fit for the client."""
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(f"{what} must not contain {reason}")
    return text


def ensure_storable_value(value: Any, *, what: str = "Value") -> Any:
    """Apply `ensure_storable` to every string inside a validated value (lists, dicts, nested
    schemas), so a list of scopes or a dict key obeys the rule like a plain field does."""
    if isinstance(value, str):
        return ensure_storable(value, what=what)
    if isinstance(value, dict):
        for key, item in value.items():
            ensure_storable_value(key, what=what)
            ensure_storable_value(item, what=what)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            ensure_storable_value(item, what=what)
    return value


def clean_text(
    text: str,
    *,
    what: str = "Message",
    max_chars: int = MAX_MESSAGE_CHARS,
    allow_empty: bool = False,
) -> str:
    """Trim, normalise line endings, and refuse what no support transcript should hold:
    control characters other than newline and tab (NUL, escapes, bells), lone surrogates and
    unassigned code points.

    Raises ValueError with a message fit for the client.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string")
    text = text.replace("\r\n", "\n").strip()
    if not text and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(text) > max_chars:
        raise ValueError(f"{what} must be at most {max_chars} characters")
    if "\r" in text:
        raise ValueError(f"{what} must not contain control characters")
    return ensure_storable(text, what=what)


# A plain `str` parameter outside a schema (a header, a path segment) that obeys the rule.
StorableStr = Annotated[str, AfterValidator(ensure_storable)]
