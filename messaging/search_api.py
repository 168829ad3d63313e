"""`GET /search`: full-text search over message contents (messaging/search.py).

Customers (`conversations:read`) search their own conversations only — the ownership filter is
part of the statement — and naming another customer's id is an IDOR attempt (403), as on every
route that takes a `customer_id`. Staff who read any conversation (`escalations:manage`)
search them all, optionally one customer's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field, field_validator

from accounts.auth import authenticators, principal_of
from core.ids import MAX_ID
from core.pagination import Page
from core.request_context import CallContext
from core.schemas import PageParams, page_route
from messaging.permissions import (
    CONVERSATION_READERS,
    can_read_any_conversation,
    ensure_acting_for_self,
)
from messaging.search import MAX_QUERY_CHARS, SearchHit, message_search, search_cursor_decode

search_router = Router(tags=["search"], auth=authenticators(CONVERSATION_READERS))


class SearchParams(PageParams):
    q: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description='Words to find; "a phrase", -excluded, or between alternatives',
    )
    status: Literal["active", "escalated", "resolved"] | None = Field(
        default=None, description="Only conversations in this state"
    )
    customer_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only this customer's conversations"
    )

    @classmethod
    def cursor_check(cls, cursor: str) -> None:
        search_cursor_decode(cursor)

    @field_validator("q", mode="after")
    @classmethod
    def _something_to_find(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("q must contain something to search for")
        return value


class SearchHitOut(Schema):
    conversation_id: int
    customer_id: int
    status: Literal["active", "escalated", "resolved"]
    message_id: int
    seq: int
    snippet: str = Field(
        description="An excerpt of the message, HTML-escaped, the matched words in <mark>"
    )
    created_at: datetime


class SearchOut(Schema):
    items: list[SearchHitOut]
    next_cursor: str | None


@page_route(
    search_router,
    SearchOut,
    summary="Search message contents: your own conversations, or every one for operators",
)
def search(request: HttpRequest, params: Query[SearchParams]) -> Page[SearchHit]:
    principal = principal_of(request)
    if params.customer_id is not None:
        ensure_acting_for_self(
            principal=principal,
            customer_id=params.customer_id,
            read=True,
            context=CallContext.from_request(request),
        )
    owner = params.customer_id if can_read_any_conversation(principal) else principal.user_id
    return message_search(
        q=params.q,
        customer_id=owner,
        status=params.status,
        limit=params.limit,
        cursor=params.cursor,
    )
