"""Retention: conversations whose last activity is older than MESSAGE_RETENTION_DAYS go, with
their messages, escalations and ratings (foreign keys cascade). Unset keeps everything."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from messaging.models import Conversation


def conversations_prune_expired(*, now: datetime) -> int:
    """Delete expired conversations; returns how many. Safe to run repeatedly (cron,
    `prune_expired`)."""
    days = settings.MESSAGE_RETENTION_DAYS
    if days is None:
        return 0
    cutoff = now - timedelta(days=days)
    with transaction.atomic():
        expired = Conversation.objects.filter(updated_at__lt=cutoff)
        count = expired.count()
        expired.delete()
    return count
