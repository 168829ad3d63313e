"""Rules for message text, shared by the REST schema, the websocket and the operators' reply.

The rule itself lives in core/text.py (one text rule for every string); these names stay
because messaging and escalations import them.
"""

from __future__ import annotations

from core.text import MAX_MESSAGE_CHARS, clean_text

__all__ = ["MAX_MESSAGE_CHARS", "clean_message_text", "clean_text"]


def clean_message_text(text: str) -> str:
    """A customer's or operator's message: 1..4000 characters after trimming."""
    return clean_text(text)
