"""Secrets at rest: a text field stored encrypted under FIELD_ENCRYPTION_KEYS.

cryptography's MultiFernet (AES-128-CBC + HMAC-SHA256, a random IV per value, authenticated):
the first key encrypts, every configured key decrypts, so keys rotate by putting a new one
first, running `manage.py rotate_field_keys` (re-encrypts every value under it), and then
dropping the old one. The column holds only the Fernet token; the plaintext exists in memory
after a row is loaded. Values cannot be compared or searched in SQL, which no such secret needs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def field_cipher() -> MultiFernet:
    """The cipher for the keys configured now (rebuilt when the setting changes)."""
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_text(value: str) -> str:
    return field_cipher().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    return _opened(lambda cipher, data: cipher.decrypt(data), token).decode("utf-8")


def reencrypt_text(token: str) -> str:
    """The same plaintext under the first key (MultiFernet.rotate)."""
    return _opened(lambda cipher, data: cipher.rotate(data), token).decode("ascii")


def _opened(operation: Callable[[MultiFernet, bytes], bytes], token: str) -> bytes:
    try:
        return operation(field_cipher(), token.encode("ascii"))
    except (InvalidToken, UnicodeError) as exc:
        # A value no configured key opens (a key dropped before `rotate_field_keys` ran, a row
        # never encrypted, a changed byte): never return the raw column as if it were the secret.
        raise ImproperlyConfigured(
            "An encrypted field could not be decrypted with FIELD_ENCRYPTION_KEYS"
        ) from exc


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A str in Python, a Fernet token in the database."""

    description = "Text encrypted at rest (Fernet, FIELD_ENCRYPTION_KEYS)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt_text(str(value))
