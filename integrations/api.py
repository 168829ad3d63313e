"""`/webhooks`, `/security-events` and `DELETE /customers/{customer_id}` (superusers, `admin`)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status

from accounts.auth import Superuser, principal_of
from accounts.scopes import ADMIN
from core.errors import NotFound
from core.ids import PathId
from core.request_context import CallContext
from core.schemas import AUTHENTICATED_ERRORS, BODY_ERRORS, PageParams, error_responses
from integrations import selectors, services
from integrations.schemas import (
    DeliveryPageOut,
    SecurityEventPageOut,
    SecurityEventParams,
    WebhookCreatedOut,
    WebhookIn,
    WebhookPageOut,
)

webhooks_router = Router(tags=["webhooks"])
security_events_router = Router(tags=["security-events"])
# Mounted at /customers beside messaging's customers router: "/{id}" and
# "/{id}/conversations" are different paths, so neither shadows the other.
customer_erasure_router = Router(tags=["customers' data"])


@webhooks_router.post(
    "",
    auth=Superuser(scopes=[ADMIN]),
    response={201: WebhookCreatedOut, **error_responses(*AUTHENTICATED_ERRORS, *BODY_ERRORS)},
    summary="Create a webhook endpoint (the signing secret is shown once)",
)
def webhook_create(request: HttpRequest, payload: WebhookIn) -> Status[dict[str, Any]]:
    endpoint, secret = services.webhook_endpoint_create(
        actor=principal_of(request).user,
        url=payload.url,
        events=list(payload.events),
        description=payload.description,
    )
    return Status(
        201,
        {
            "id": endpoint.pk,
            "url": endpoint.url,
            "events": endpoint.events,
            "description": endpoint.description,
            "secret": secret,
            "is_active": endpoint.is_active,
            "created_at": endpoint.created_at,
        },
    )


@webhooks_router.get(
    "",
    auth=Superuser(scopes=[ADMIN]),
    response={200: WebhookPageOut, **error_responses(400, *AUTHENTICATED_ERRORS, 422)},
    summary="List webhook endpoints (never their secrets)",
)
def webhook_list(request: HttpRequest, params: Query[PageParams]) -> dict[str, Any]:
    items, next_cursor = selectors.webhook_endpoint_page(cursor=params.cursor, limit=params.limit)
    return {"items": items, "next_cursor": next_cursor}


@webhooks_router.delete(
    "/{webhook_id}",
    auth=Superuser(scopes=[ADMIN]),
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="Delete a webhook endpoint and its delivery history",
)
def webhook_delete(request: HttpRequest, webhook_id: PathId) -> Status[None]:
    services.webhook_endpoint_delete(endpoint_id=webhook_id)
    return Status(204, None)


@webhooks_router.get(
    "/{webhook_id}/deliveries",
    auth=Superuser(scopes=[ADMIN]),
    response={200: DeliveryPageOut, **error_responses(400, *AUTHENTICATED_ERRORS, 404, 422)},
    summary="An endpoint's delivery attempts, newest first",
)
def webhook_deliveries(
    request: HttpRequest, webhook_id: PathId, params: Query[PageParams]
) -> dict[str, Any]:
    endpoint = selectors.webhook_endpoint_get(endpoint_id=webhook_id)
    if endpoint is None:
        raise NotFound("Webhook not found")
    items, next_cursor = selectors.webhook_delivery_page(
        endpoint=endpoint, cursor=params.cursor, limit=params.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@security_events_router.get(
    "",
    auth=Superuser(scopes=[ADMIN]),
    response={200: SecurityEventPageOut, **error_responses(400, *AUTHENTICATED_ERRORS, 422)},
    summary="Security events, newest first; filter by kind and user",
)
def security_event_list(request: HttpRequest, params: Query[SecurityEventParams]) -> dict[str, Any]:
    items, next_cursor = selectors.security_event_page(
        kind=params.kind, user_id=params.user_id, cursor=params.cursor, limit=params.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@customer_erasure_router.delete(
    "/{customer_id}",
    auth=Superuser(scopes=[ADMIN]),
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 409, 422)},
    summary="Erase a customer and everything that is theirs (staff accounts: 409)",
)
def customer_erase(request: HttpRequest, customer_id: PathId) -> Status[None]:
    services.customer_erase(
        customer_id=customer_id,
        actor=principal_of(request).user,
        context=CallContext.from_request(request),
    )
    return Status(204, None)
