"""Delete rows that no longer mean anything: idempotency records past their 24 h replay window,
revoked access tokens and outstanding refresh tokens past their expiry. Run it from cron (e.g.
hourly); correctness never depends on it, only storage does. Lives in messaging (the highest
app whose rows it prunes) so accounts never imports messaging."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import expired_tokens_prune
from messaging.idempotency import idempotency_prune


class Command(BaseCommand):
    help = "Prune expired idempotency records and expired token rows."

    def handle(self, *args: Any, **options: Any) -> None:
        records = idempotency_prune()
        tokens = expired_tokens_prune()
        self.stdout.write(f"Pruned {records} idempotency record(s) and {tokens} token row(s).")
