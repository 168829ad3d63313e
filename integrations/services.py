"""Writes for webhook endpoints and customer erasure (REST and admin share these)."""

from __future__ import annotations

import base64
import secrets

from django.db import transaction

from accounts.data_rights import user_erase
from accounts.models import User
from core.errors import NotFound, UnprocessableRequest
from core.request_context import CallContext
from integrations.delivery import webhook_redeliver
from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.urlguard import UnsafeUrl, request_url, url_check
from messaging.events import EVENT_TYPES
from messaging.models import is_possible_id

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
SECRET_BYTES = 32


def webhook_secret_new() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_url_validate(url: str) -> str:
    """Refuse (422) a URL the worker would refuse to call: the same check, at creation."""
    try:
        request_url(url_check(url))  # everything delivery checks, the request's shape included
    except UnsafeUrl as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "url")) from None
    return url


def webhook_endpoint_create(
    *, actor: User | None, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its secret (shown once by the caller)."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise UnprocessableRequest(
            f"Unknown event types: {', '.join(unknown)}" if unknown else "Name at least one event",
            loc=("body", "events"),
        )
    webhook_url_validate(url)
    secret = webhook_secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        events=[event for event in EVENT_TYPES if event in set(events)],
        description=description,
        secret=secret,
        created_by=actor,
    )
    return endpoint, secret


def webhook_endpoint_delete(*, endpoint_id: int) -> None:
    """Delete an endpoint with its delivery history; queued attempts find no row and stop."""
    if not is_possible_id(endpoint_id):
        raise NotFound("Webhook not found")
    deleted, _ = WebhookEndpoint.objects.filter(pk=endpoint_id).delete()
    if not deleted:
        raise NotFound("Webhook not found")


def webhook_deliveries_redeliver(*, delivery_ids: list[int]) -> int:
    """Queue a fresh attempt for each delivery's (event, endpoint) — once per pair."""
    seen: set[tuple[int, int]] = set()
    with transaction.atomic():
        for delivery in WebhookDelivery.objects.filter(pk__in=delivery_ids).order_by("id"):
            pair = (delivery.endpoint_id, delivery.event_id)
            if pair in seen:
                continue
            seen.add(pair)
            webhook_redeliver(delivery=delivery)
    return len(seen)


def customer_erase(*, customer_id: int, actor: User, context: CallContext | None) -> None:
    """A superuser erases a customer (DELETE /customers/{id}). 404 for no such user, 409 for
    a staff account."""
    user = User.objects.filter(pk=customer_id).first() if is_possible_id(customer_id) else None
    if user is None:
        raise NotFound("Customer not found")
    user_erase(user=user, actor=actor, context=context)
