"""Reads for identity and access."""

from __future__ import annotations

from accounts.models import ApiKey
from core.pagination import Page, keyset_page


def api_key_page(*, cursor: str | None, limit: int) -> Page[ApiKey]:
    """API keys, newest first. Only superusers reach this (route policy)."""
    return keyset_page(
        ApiKey.objects.all(), field="created_at", descending=True, cursor=cursor, limit=limit
    )
