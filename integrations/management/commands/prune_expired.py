"""Delete rows that no longer mean anything, from every app: idempotency records past their
24 h replay window, revoked access tokens and outstanding refresh tokens past their expiry,
security events and webhook history past their retention, and — when MESSAGE_RETENTION_DAYS is
set — conversations whose last activity is older. Run it from cron (e.g. hourly); correctness
never depends on it, only storage does. It lives in integrations, the top app, because it
prunes rows of every layer below and nothing below may import upwards."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.security import security_events_prune
from accounts.services import expired_tokens_prune
from integrations.delivery import webhook_history_prune
from messaging.idempotency import idempotency_prune
from messaging.retention import conversations_prune_expired


class Command(BaseCommand):
    help = (
        "Prune expired idempotency records, token rows, security events, webhook history and "
        "(with MESSAGE_RETENTION_DAYS) old conversations."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        records = idempotency_prune(now=now)
        tokens = expired_tokens_prune(now=now)
        events = security_events_prune(now=now)
        webhooks = webhook_history_prune(now=now)
        conversations = conversations_prune_expired(now=now)
        self.stdout.write(
            f"Pruned {records} idempotency record(s) and {tokens} token row(s); "
            f"{events} security event(s), {webhooks} webhook history row(s), "
            f"{conversations} conversation(s) past retention."
        )
