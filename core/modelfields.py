"""Model fields several apps declare alike, spelled once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models


def optional_user(
    *,
    related_name: str = "+",
    on_delete: Callable[..., Any] = models.SET_NULL,
    editable: bool = True,
) -> models.ForeignKey[Any, Any]:
    """A reference to a user that may be empty: who created, holds, resolved or wrote a row.
    By default it outlives the user (SET_NULL): the row stays, anonymous, when the account is
    erased. `related_name="+"` (the default): the user has no reverse accessor to it."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=on_delete,
        null=True,
        blank=True,
        related_name=related_name,
        editable=editable,
    )
