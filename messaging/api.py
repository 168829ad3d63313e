"""`/messages/process`, `/conversations`, `/customers/{id}/conversations`, history."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from ninja import Header, Query, Router

from accounts.auth import authenticators, principal_of, read_along_of
from accounts.fastauth import ReadAlong
from core.errors import NotFound
from core.ids import PathId
from core.pagination import Page
from core.parsing import MalformedRequest, json_loads
from core.request_context import CallContext
from core.schemas import (
    AUTHENTICATED_ERRORS,
    BODY_ERRORS,
    PageParams,
    error_responses,
    page_route,
    rendered_json,
)
from core.text import StorableStr
from messaging import fastpath, selectors, services
from messaging.models import Conversation
from messaging.permissions import (
    CONVERSATION_READERS,
    MESSAGE_WRITERS,
    ensure_acting_for_self,
)
from messaging.schemas import (
    ConversationPageOut,
    HistoryOut,
    HistoryParams,
    MessageProcessIn,
    ProcessOut,
    history_out,
    process_out,
)


def _context_along(request: HttpRequest, user_id: int) -> ReadAlong | None:
    """The agent's context of the conversation a message names, to be read in the token
    lookup's statement (fastpath.agent_context_along): one round trip for both. Only a read
    ahead: the body is validated by the operation as always, and the turn uses this read only
    for the very customer and conversation it was made for (fastpath.context_read_of); for a
    new conversation, or a body this cannot read, there is nothing to read ahead."""
    try:
        body = json_loads(request.body)
    except (MalformedRequest, RequestDataTooBig, UnreadablePostError):
        # The operation reads the body again and answers for it (400, 413) as it always did.
        return None
    conversation_id = body.get("conversation_id") if isinstance(body, dict) else None
    if type(conversation_id) is not int:  # noqa: E721 - not a bool, not a string
        return None
    return fastpath.agent_context_along(customer_id=user_id, conversation_id=conversation_id)


# Each router's policy is declared once, on the router: every route below is theirs.
messages_router = Router(
    tags=["messages"], auth=authenticators(MESSAGE_WRITERS, read_along=_context_along)
)
conversations_router = Router(tags=["conversations"], auth=authenticators(CONVERSATION_READERS))
customers_router = Router(tags=["conversations"], auth=authenticators(CONVERSATION_READERS))


@messages_router.post(
    "/process",
    response={
        200: ProcessOut,
        **error_responses(*AUTHENTICATED_ERRORS, 404, 409, 429, *BODY_ERRORS),
    },
    summary="Send a customer message; the agent (or, when escalated, the system) replies",
)
def message_process(
    request: HttpRequest,
    response: HttpResponse,
    payload: MessageProcessIn,
    idempotency_key: StorableStr | None = Header(  # noqa: B008 - ninja's declaration style
        default=None, alias="Idempotency-Key", min_length=1, max_length=255
    ),
) -> HttpResponse:
    principal = principal_of(request)
    context = CallContext.from_request(request)
    ensure_acting_for_self(
        principal=principal, customer_id=payload.customer_id, read=False, context=context
    )
    result = services.message_send(
        customer=principal.user,
        conversation_id=payload.conversation_id,
        text=payload.message,
        idempotency_key=idempotency_key,
        context=context,
        context_read=fastpath.context_read_of(read_along_of(request)),
    )
    if result.rate is not None:
        result.rate.apply_headers(response)
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    # The body is ProcessOut read from the result (messaging.schemas.process_out: the schema's
    # fields and resolvers, without validating already typed values), rendered into ninja's
    # temporal response, which carries the headers set above.
    return rendered_json(process_out(result), response=response)


@page_route(
    conversations_router, ConversationPageOut, summary="Your conversations, newest activity first"
)
def conversation_list(request: HttpRequest, params: Query[PageParams]) -> Page[Conversation]:
    return selectors.conversation_page(
        customer_id=principal_of(request).user_id, cursor=params.cursor, limit=params.limit
    )


@page_route(
    customers_router,
    ConversationPageOut,
    summary="A customer's conversations (your own; operators may read any)",
    path="/{customer_id}/conversations",
)
def customer_conversation_list(
    request: HttpRequest, customer_id: PathId, params: Query[PageParams]
) -> Page[Conversation]:
    ensure_acting_for_self(
        principal=principal_of(request),
        customer_id=customer_id,
        read=True,
        context=CallContext.from_request(request),
    )
    return selectors.conversation_page(
        customer_id=customer_id, cursor=params.cursor, limit=params.limit
    )


@conversations_router.get(
    "/{conversation_id}/history",
    response={200: HistoryOut, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="A conversation's messages in ascending seq",
)
def conversation_history(
    request: HttpRequest, conversation_id: PathId, params: Query[HistoryParams]
) -> HttpResponse:
    # One fixed statement (ownership and the page), rendered as HistoryOut reads it
    # (messaging.schemas.history_out): no ORM query building, no per-message validation.
    page = fastpath.history_page(
        principal=principal_of(request),
        conversation_id=conversation_id,
        limit=params.limit,
        after_seq=params.after_seq,
        before_seq=params.before_seq,
    )
    if page is None:
        raise NotFound("Conversation not found")
    return rendered_json(history_out(page))
