"""`manage.py rotate_field_keys`: re-encrypt every encrypted field under the first key.

Rotation: put the new Fernet key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it),
deploy, run this command, then drop the old keys. Every model field of type
core.fieldcrypt.EncryptedTextField is covered (webhook signing secrets, TOTP secrets), whichever
app defines it.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from core.fieldcrypt import EncryptedTextField


def encrypted_fields() -> list[tuple[Any, str]]:
    """(model, field name) for every encrypted field of every installed model."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]


def field_keys_rotate() -> int:
    """Re-encrypt every encrypted value under the first configured key. Returns the number of
    values rewritten. Each row is read (decrypted with whichever key opens it) and written back
    (encrypted with the first), one model at a time in a transaction."""
    rewritten = 0
    for model, name in encrypted_fields():
        with transaction.atomic():
            rows = model._default_manager.select_for_update().exclude(**{f"{name}__isnull": True})
            for pk, value in rows.values_list("pk", name).iterator():
                model._default_manager.filter(pk=pk).update(**{name: value})
                rewritten += 1
    return rewritten


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field (webhook and TOTP secrets) under the first key."

    def handle(self, *args: Any, **options: Any) -> None:
        count = field_keys_rotate()
        self.stdout.write(
            f"Re-encrypted {count} value(s) under the first FIELD_ENCRYPTION_KEYS key."
        )
