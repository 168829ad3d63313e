"""Rules for message text, shared by the REST schema, the websocket and the operators' reply."""

from __future__ import annotations

import unicodedata

MAX_MESSAGE_CHARS = 4000
_ALLOWED_CONTROLS = {"\n", "\t"}


def clean_text(
    text: str,
    *,
    what: str = "Message",
    max_chars: int = MAX_MESSAGE_CHARS,
    allow_empty: bool = False,
) -> str:
    """Trim, normalise line endings, and refuse what no support transcript should hold
    (control characters other than newline and tab: NUL, escapes, bells).

    Raises ValueError with a message fit for the client.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string")
    text = text.replace("\r\n", "\n").strip()
    if not text and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(text) > max_chars:
        raise ValueError(f"{what} must be at most {max_chars} characters")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise ValueError(f"{what} must not contain control characters")
        if category == "Cs":
            # A lone surrogate (JSON allows "\ud800") cannot be stored as UTF-8: refused here
            # rather than failing in the database.
            raise ValueError(f"{what} must not contain unpaired surrogates")
    return text


def clean_message_text(text: str) -> str:
    """A customer's or operator's message: 1..4000 characters after trimming."""
    return clean_text(text)
