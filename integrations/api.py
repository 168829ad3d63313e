"""`/webhooks`, `/security-events` and `DELETE /customers/{customer_id}` (superusers, `admin`)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from accounts.auth import Superuser, principal_of
from accounts.models import SecurityEvent
from accounts.scopes import ADMIN
from core.errors import NotFound
from core.ids import PathId
from core.pagination import Page
from core.request_context import CallContext
from core.schemas import (
    AUTHENTICATED_ERRORS,
    BODY_ERRORS,
    PageParams,
    ShownOnce,
    error_responses,
    page_route,
)
from integrations import selectors, services
from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.schemas import (
    DeliveryPageOut,
    SecurityEventPageOut,
    SecurityEventParams,
    WebhookCreatedOut,
    WebhookIn,
    WebhookPageOut,
)

# Superusers only (with the `admin` scope), declared once for every route of each router.
webhooks_router = Router(tags=["webhooks"], auth=Superuser(scopes=[ADMIN]))
security_events_router = Router(tags=["security-events"], auth=Superuser(scopes=[ADMIN]))
# Mounted at /customers beside messaging's customers router: "/{id}" and
# "/{id}/conversations" are different paths, so neither shadows the other.
customer_erasure_router = Router(tags=["customers' data"], auth=Superuser(scopes=[ADMIN]))


@webhooks_router.post(
    "",
    response={201: WebhookCreatedOut, **error_responses(*AUTHENTICATED_ERRORS, *BODY_ERRORS)},
    summary="Create a webhook endpoint (the signing secret is shown once)",
)
def webhook_create(request: HttpRequest, payload: WebhookIn) -> Status[ShownOnce]:
    endpoint, secret = services.webhook_endpoint_create(
        actor=principal_of(request).user,
        url=payload.url,
        events=list(payload.events),
        description=payload.description,
    )
    return Status(201, ShownOnce(endpoint, secret=secret))


@page_route(webhooks_router, WebhookPageOut, summary="List webhook endpoints (never their secrets)")
def webhook_list(request: HttpRequest, params: Query[PageParams]) -> Page[WebhookEndpoint]:
    return selectors.webhook_endpoint_page(cursor=params.cursor, limit=params.limit)


@webhooks_router.delete(
    "/{webhook_id}",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="Delete a webhook endpoint and its delivery history",
)
def webhook_delete(request: HttpRequest, webhook_id: PathId) -> Status[None]:
    services.webhook_endpoint_delete(endpoint_id=webhook_id)
    return Status(204, None)


@page_route(
    webhooks_router,
    DeliveryPageOut,
    summary="An endpoint's delivery attempts, newest first",
    path="/{webhook_id}/deliveries",
    errors=(404,),
)
def webhook_deliveries(
    request: HttpRequest, webhook_id: PathId, params: Query[PageParams]
) -> Page[WebhookDelivery]:
    endpoint = selectors.webhook_endpoint_get(endpoint_id=webhook_id)
    if endpoint is None:
        raise NotFound("Webhook not found")
    return selectors.webhook_delivery_page(
        endpoint=endpoint, cursor=params.cursor, limit=params.limit
    )


@page_route(
    security_events_router,
    SecurityEventPageOut,
    summary="Security events, newest first; filter by kind and user",
)
def security_event_list(
    request: HttpRequest, params: Query[SecurityEventParams]
) -> Page[SecurityEvent]:
    return selectors.security_event_page(
        kind=params.kind, user_id=params.user_id, cursor=params.cursor, limit=params.limit
    )


@customer_erasure_router.delete(
    "/{customer_id}",
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
