"""Schemas of the operators' API: escalations and statistics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.utils import timezone
from ninja import Schema
from pydantic import ConfigDict, Field, field_validator, model_validator

from core.schemas import PageParams, QueryIn, StrictIn
from messaging.validation import MAX_MESSAGE_CHARS, clean_message_text

MAX_RESOLUTION_NOTES_CHARS = 4000

EscalationStatus = Literal["open", "assigned", "resolved"]
SlaName = Literal["first_response", "resolution"]


class EscalationOut(Schema):
    id: int
    conversation_id: int
    customer_id: int
    status: EscalationStatus
    reason: str
    created_at: datetime
    assigned_to: int | None = Field(description="The assignee's user id")
    resolved_at: datetime | None
    resolution_notes: str = Field(description="Empty until resolved")
    first_response_due: datetime | None = Field(
        description="When the first operator reply is due (business hours); null: no SLA"
    )
    resolution_due: datetime | None = Field(
        description="When the resolution is due (business hours); null: no SLA"
    )
    first_responded_at: datetime | None = Field(description="The first operator reply")
    sla_breached: list[SlaName] = Field(
        description="The SLAs missed so far: first_response, resolution (empty: none)"
    )

    @staticmethod
    def resolve_customer_id(obj: Any) -> int:
        return obj.conversation.customer_id  # type: ignore[no-any-return]

    @staticmethod
    def resolve_assigned_to(obj: Any) -> int | None:
        return obj.assigned_to_id  # type: ignore[no-any-return]

    @staticmethod
    def resolve_first_responded_at(obj: Any) -> datetime | None:
        return obj.first_response_at  # type: ignore[no-any-return]

    @staticmethod
    def resolve_sla_breached(obj: Any) -> list[str]:
        return obj.sla_breaches(now=timezone.now())  # type: ignore[no-any-return]


class EscalationPageOut(Schema):
    items: list[EscalationOut]
    next_cursor: str | None


class EscalationListParams(PageParams):
    status: EscalationStatus | None = Field(
        default=None, description="Only escalations in this state; all when omitted"
    )
    sla: Literal["breached", "due_soon"] | None = Field(
        default=None,
        description="breached: an SLA was missed; due_soon: unresolved, and a pending due time "
        "is at most SLA_DUE_SOON_MINUTES away",
    )


class EscalationAssignIn(StrictIn):
    operator_id: int | None = Field(
        default=None, description="An active staff member's user id; omitted: the caller"
    )


class EscalationReplyIn(StrictIn):
    message: str = Field(
        description=f"1..{MAX_MESSAGE_CHARS} characters after trimming; no control characters "
        "other than newline and tab",
        max_length=MAX_MESSAGE_CHARS * 2,  # the exact rule is applied after trimming
    )

    @field_validator("message")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_message_text(value)


class EscalationResolveIn(StrictIn):
    resolution_notes: str = Field(
        description=f"What was done, for the team (0..{MAX_RESOLUTION_NOTES_CHARS} characters "
        "after trimming)",
        max_length=MAX_RESOLUTION_NOTES_CHARS * 2,  # the exact rule is applied by the service
    )


class EscalationResolveOut(Schema):
    status: Literal["resolved"]
    conversation_id: int


class PercentilesOut(Schema):
    p50: float | None
    p90: float | None
    p99: float | None


# Report dates: wide enough for any real range, narrow enough that a day's bounds in any time
# zone stay inside what datetime and both databases can hold.
EARLIEST_REPORT_DAY = date(1900, 1, 1)
LATEST_REPORT_DAY = date(9998, 12, 31)


class StatisticsOut(Schema):
    conversations_total: int
    conversations_active: int = Field(description="Conversations the agent is handling now")
    conversations_escalated: int = Field(description="Conversations with operators now")
    escalations_open: int = Field(description="Unresolved escalations (open or assigned)")
    escalations_resolved: int
    escalation_rate: float = Field(
        description="Conversations ever escalated / all conversations (0.0 when there are none)"
    )
    avg_resolution_seconds: float | None = Field(
        description="Mean time from hand-off to resolution over resolved escalations"
    )
    median_first_response_seconds: float | None = Field(
        description="Median time from hand-off to an operator's first reply"
    )
    conversations_resolved_by_agent: int = Field(
        description="Conversations the agent answered at least once and never escalated"
    )
    messages_total: int
    messages_last_24h: int
    intents: dict[str, int] = Field(description="Customer messages per detected intent")
    csat_average: float | None = Field(
        default=None, description="Mean customer rating (1..5) of resolved escalations"
    )
    csat_responses: int = Field(default=0, description="Ratings received")
    first_response_seconds: PercentilesOut = Field(
        description="Hand-off to the first operator reply, over escalations that got one"
    )
    resolution_seconds: PercentilesOut = Field(
        description="Hand-off to resolution, over resolved escalations"
    )
    bot_resolved_rate: float = Field(
        description="Conversations never escalated / all conversations (0.0 when none)"
    )
    sla_breach_rate: float = Field(
        description="Escalations with a missed SLA / escalations with due times (0.0 when none)"
    )


class StatisticsParams(QueryIn):
    """`?from=&to=`: ISO dates (YYYY-MM-DD), both included, in the site's time zone; every
    figure then counts only what was created in that range."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date | None = Field(default=None, alias="from", description="First day (included)")
    to: date | None = Field(default=None, description="Last day (included)")

    @field_validator("from_", "to", mode="after")
    @classmethod
    def _in_range(cls, value: date | None) -> date | None:
        if value is not None and not (EARLIEST_REPORT_DAY <= value <= LATEST_REPORT_DAY):
            raise ValueError(f"dates must fall in {EARLIEST_REPORT_DAY}..{LATEST_REPORT_DAY}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> StatisticsParams:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("'from' must not be after 'to'")
        return self


class OperatorOut(Schema):
    id: int
    display_name: str = Field(description="The name customers see")
    status: Literal["online", "offline"] = Field(
        description="online: an inbox page is connected and the operator is not away"
    )
    open_assigned: int = Field(description="Unresolved escalations assigned to the operator")
    capacity: int = Field(description="Open escalations auto-assignment gives them at most")


class OperatorListOut(Schema):
    items: list[OperatorOut]


class PresenceIn(StrictIn):
    status: Literal["online", "away"]
