"""Schemas of the webhooks, security-events and customer-data routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field, field_validator

from accounts.models import SecurityEvent
from core.ids import QueryId
from core.schemas import PageParams, StrictIn

EventType = Literal[
    "conversation.created",
    "message.created",
    "escalation.opened",
    "escalation.assigned",
    "escalation.resolved",
    "rating.created",
]


class WebhookIn(StrictIn):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL of a public host")
    events: list[EventType] = Field(min_length=1, max_length=6)
    description: str = Field(default="", max_length=500)


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    description: str
    is_active: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="whsec_…; shown only in this response")


class WebhookPageOut(Schema):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(Schema):
    event_id: str
    event_type: str
    attempt: int
    status: str
    status_code: int | None
    error: str
    delivered: bool
    created_at: datetime

    @staticmethod
    def resolve_event_id(obj: Any) -> str:
        return obj.event.event_id  # type: ignore[no-any-return]

    @staticmethod
    def resolve_event_type(obj: Any) -> str:
        return obj.event.type  # type: ignore[no-any-return]


class DeliveryPageOut(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None


class SecurityEventParams(PageParams):
    kind: str | None = Field(default=None, max_length=32)
    user_id: QueryId | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in SecurityEvent.Kind.values:
            raise ValueError(f"Unknown kind; one of: {', '.join(SecurityEvent.Kind.values)}")
        return value


class SecurityEventOut(Schema):
    id: int
    kind: str
    level: str
    user_id: int | None
    ip: str | None
    path: str
    request_id: str
    detail: dict[str, Any]
    created_at: datetime


class SecurityEventPageOut(Schema):
    items: list[SecurityEventOut]
    next_cursor: str | None
