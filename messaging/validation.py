"""Rules for message text, shared by the REST schema, the websocket and the operators' reply."""

from __future__ import annotations

import unicodedata

MAX_MESSAGE_CHARS = 4000
_ALLOWED_CONTROLS = {"\n", "\t"}


def clean_message_text(text: str) -> str:
    """Trim, normalise line endings, and refuse what no support transcript should hold.

    Raises ValueError with a message fit for the client.
    """
    if not isinstance(text, str):
        raise ValueError("Message must be a string")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValueError("Message must not be empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValueError(f"Message must be at most {MAX_MESSAGE_CHARS} characters")
    for char in text:
        if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS:
            raise ValueError("Message must not contain control characters")
    return text
