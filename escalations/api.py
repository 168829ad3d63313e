"""Operators' REST API (staff tier): `/escalations` and `/statistics` (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status

from accounts.auth import Staff, authenticators, principal_of
from accounts.scopes import STATS_READ
from core.ids import PathId
from core.pagination import Page
from core.schemas import (
    AUTHENTICATED_ERRORS,
    BODY_ERRORS,
    error_responses,
    optional_body,
    optional_body_openapi,
    page_route,
    validate_body,
)
from escalations import inbox, operators, selectors, services
from escalations.permissions import ESCALATION_MANAGERS
from escalations.schemas import (
    EscalationAssignIn,
    EscalationListParams,
    EscalationOut,
    EscalationPageOut,
    EscalationReplyIn,
    EscalationResolveIn,
    EscalationResolveOut,
    OperatorListOut,
    OperatorOut,
    PresenceIn,
    StatisticsOut,
    StatisticsParams,
)
from messaging.schemas import MessageOut

# Each router's policy is declared once, on the router: every route below is theirs.
escalations_router = Router(tags=["escalations"], auth=authenticators(ESCALATION_MANAGERS))
statistics_router = Router(tags=["statistics"], auth=Staff(scopes=[STATS_READ]))
operators_router = Router(tags=["operators"], auth=authenticators(ESCALATION_MANAGERS))


@page_route(
    escalations_router,
    EscalationPageOut,
    summary="Escalations, oldest first (optionally one status, or breached / due-soon SLAs)",
)
def escalation_list(request: HttpRequest, params: Query[EscalationListParams]) -> Page[Any]:
    return selectors.escalation_page(
        status=params.status, cursor=params.cursor, limit=params.limit, sla=params.sla
    )


@escalations_router.post(
    "/{conversation_id}/assign",
    # 422: a conversation_id that is not an integer (ninja's path validation).
    response={200: EscalationOut, **error_responses(*AUTHENTICATED_ERRORS, 404, *BODY_ERRORS)},
    openapi_extra=optional_body_openapi(EscalationAssignIn),
    summary="Assign the conversation's open escalation to yourself or a colleague",
)
def escalation_assign(request: HttpRequest, conversation_id: PathId) -> Any:
    # The body is optional (assigning to yourself needs none), which ninja's declared bodies
    # cannot express; it is validated with the same strict schema by hand.
    payload = validate_body(EscalationAssignIn, optional_body(request))
    return services.escalation_assign(
        conversation_id=conversation_id,
        actor=principal_of(request).user,
        assignee=inbox.assignee_get(operator_id=payload.operator_id),
    )


@escalations_router.post(
    "/{conversation_id}/reply",
    response={201: MessageOut, **error_responses(*AUTHENTICATED_ERRORS, 404, 409, *BODY_ERRORS)},
    summary="Answer an escalated conversation; the customer receives it live",
)
def escalation_reply(
    request: HttpRequest, conversation_id: PathId, payload: EscalationReplyIn
) -> Status[Any]:
    message = services.escalation_reply(
        conversation_id=conversation_id,
        actor=principal_of(request).user,
        text=payload.message,
    )
    return Status(201, message)


@escalations_router.post(
    "/{conversation_id}/resolve",
    response={
        200: EscalationResolveOut,
        **error_responses(*AUTHENTICATED_ERRORS, 404, *BODY_ERRORS),
    },
    summary="Resolve the open escalation; the customer's next message goes to the agent",
)
def escalation_resolve(
    request: HttpRequest, conversation_id: PathId, payload: EscalationResolveIn
) -> dict[str, Any]:
    escalation = services.escalation_resolve(
        conversation_id=conversation_id,
        actor=principal_of(request).user,
        notes=payload.resolution_notes,
    )
    return {"status": "resolved", "conversation_id": escalation.conversation_id}


@statistics_router.get(
    "",
    response={200: StatisticsOut, **error_responses(*AUTHENTICATED_ERRORS, 422)},
    summary="Operational figures (optionally for a date range): conversations, escalations, "
    "response-time percentiles, rates, messages, intents",
)
def statistics(request: HttpRequest, params: Query[StatisticsParams]) -> dict[str, Any]:
    period = selectors.Period(start=params.from_, end=params.to)
    return {
        **selectors.statistics_compute(period=period),
        **inbox.csat_compute(period=period),
    }


@operators_router.get(
    "",
    response={200: OperatorListOut, **error_responses(*AUTHENTICATED_ERRORS)},
    summary="Operators with their presence, open assignments and capacity (online first)",
)
def operator_list(request: HttpRequest) -> dict[str, Any]:
    return {"items": [status.item() for status in operators.operators_list()]}


@operators_router.post(
    "/me/presence",
    response={200: OperatorOut, **error_responses(*AUTHENTICATED_ERRORS, *BODY_ERRORS)},
    summary="Set yourself away (out of auto-assignment) or back online",
)
def operator_presence(request: HttpRequest, payload: PresenceIn) -> dict[str, Any]:
    status = services.operator_presence_set(actor=principal_of(request).user, status=payload.status)
    return status.item()
