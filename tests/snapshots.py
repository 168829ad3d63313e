"""Every row of the tables a change can touch, to prove that a refused request changed nothing,
or that two paths wrote the same (one spelling for every test)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model


def rows_of(*models: type[Model]) -> dict[str, list[dict[str, Any]]]:
    """Each model's rows, every column, in primary-key order."""
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in models}


def database_state() -> dict[str, list[dict[str, Any]]]:
    """Every row a customer's, an operator's or a webhook change can write: conversations,
    messages, escalations, idempotency records, the webhook outbox and its deliveries. (Not the
    security events: a refusal records one, and the tests that refuse count them.)"""
    from escalations.models import Escalation
    from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
    from messaging.models import Conversation, IdempotencyRecord, Message

    return rows_of(
        Conversation,
        Message,
        Escalation,
        IdempotencyRecord,
        WebhookEndpoint,
        WebhookEvent,
        WebhookDelivery,
    )
