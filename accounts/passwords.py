"""Password rules beyond Django's validators (AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

# Words anyone guessing a password for this service tries first: the product's name and what it
# is for. Documented in docs/security.md ("Passwords").
DEFAULT_CONTEXT_WORDS = ("parley", "helpdesk", "customer-support", "customersupport")


class ContextWordsValidator:
    """Refuse passwords that contain a word of the service's own context (ASVS 6.1.2, 6.2.11),
    compared case-insensitively."""

    def __init__(self, words: tuple[str, ...] | list[str] = DEFAULT_CONTEXT_WORDS) -> None:
        self.words = tuple(word.casefold() for word in words)

    def validate(self, password: str, user: Any = None) -> None:
        folded = password.casefold()
        found = [word for word in self.words if word in folded]
        if found:
            raise ValidationError(
                f"This password contains a word that is too easy to guess here: {found[0]!r}.",
                code="password_context_word",
            )

    def get_help_text(self) -> str:
        return "Your password can't contain the name of this service."
