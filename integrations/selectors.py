"""Reads for webhooks and security events. Only superusers reach them (route policy)."""

from __future__ import annotations

from accounts.models import SecurityEvent
from core.pagination import Page, keyset_page
from integrations.models import WebhookDelivery, WebhookEndpoint
from messaging.models import is_possible_id


def webhook_endpoint_page(*, cursor: str | None, limit: int) -> Page[WebhookEndpoint]:
    return keyset_page(
        WebhookEndpoint.objects.all(),
        field="created_at",
        descending=True,
        cursor=cursor,
        limit=limit,
    )


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint | None:
    if not is_possible_id(endpoint_id):
        return None
    return WebhookEndpoint.objects.filter(pk=endpoint_id).order_by().first()


def webhook_delivery_page(
    *, endpoint: WebhookEndpoint, cursor: str | None, limit: int
) -> Page[WebhookDelivery]:
    """One endpoint's attempts, newest first."""
    return keyset_page(
        WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event"),
        field="created_at",
        descending=True,
        cursor=cursor,
        limit=limit,
    )


def security_event_page(
    *, kind: str | None, user_id: int | None, cursor: str | None, limit: int
) -> Page[SecurityEvent]:
    events = SecurityEvent.objects.all()
    if kind is not None:
        events = events.filter(kind=kind)
    if user_id is not None:
        events = events.filter(user_id=user_id)
    return keyset_page(events, field="created_at", descending=True, cursor=cursor, limit=limit)
