"""The keys of the message item the contract gives every client (the history's `messages`, the
conversation socket's `message` frames), spelled once for the tests that pin them."""

from __future__ import annotations

MESSAGE_ITEM_KEYS = frozenset(
    [
        *"id seq role content intent confidence created_at".split(),  # SPEC's message item
        "author_name",  # additive: operator messages' display name (docs/inbox.md)
    ]
)
