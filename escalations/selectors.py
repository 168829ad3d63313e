"""Reads for operators: the escalation queue and the statistics (API and admin alike).

Every figure is an aggregate computed by the database — no Python loop over rows — so the cost
of `statistics_compute` is a fixed number of queries whatever the volume (pinned in
tests/escalations/test_statistics.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.pagination import keyset_page
from escalations.models import Escalation, sla_breached_q, sla_due_soon_q
from messaging.models import Conversation, Message

UNRESOLVED = (Escalation.Status.OPEN, Escalation.Status.ASSIGNED)


# --- The queue ------------------------------------------------------------------------------


def sla_filter(sla: str, *, now: datetime) -> Q:
    """`?sla=breached|due_soon` as a filter (definitions in escalations.models)."""
    if sla == "breached":
        return sla_breached_q(now=now)
    return sla_due_soon_q(now=now, within=timedelta(minutes=settings.SLA_DUE_SOON_MINUTES))


def escalation_page(
    *, status: str | None, cursor: str | None, limit: int, sla: str | None = None
) -> tuple[list[Escalation], str | None]:
    """Escalations oldest first (created_at, id ascending): the queue operators work through.
    One query; `customer_id` comes from the joined conversation."""
    queryset = Escalation.objects.select_related("conversation")
    if status is not None:
        queryset = queryset.filter(status=status)
    if sla is not None:
        queryset = queryset.filter(sla_filter(sla, now=timezone.now()))
    return keyset_page(queryset, field="created_at", descending=False, cursor=cursor, limit=limit)


def escalation_get(*, escalation_id: int) -> Escalation | None:
    return (
        Escalation.objects.select_related("conversation__customer", "assigned_to", "resolved_by")
        .filter(pk=escalation_id)
        .first()
    )


# --- Statistics -----------------------------------------------------------------------------


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _duration(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def statistics_compute(*, now: datetime | None = None) -> dict[str, Any]:
    """The figures of GET /statistics (definitions in docs/escalations.md).

    Four aggregate queries, plus one for the median when any escalation got a reply.
    """
    now = now or timezone.now()
    ever_escalated = Exists(Escalation.objects.filter(conversation=OuterRef("pk")))
    agent_replied = Exists(
        Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.AGENT)
    )
    conversations = Conversation.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=Conversation.Status.ACTIVE)),
        escalated=Count("id", filter=Q(status=Conversation.Status.ESCALATED)),
        ever_escalated=Count("id", filter=Q(ever_escalated)),
        resolved_by_agent=Count("id", filter=Q(agent_replied) & ~Q(ever_escalated)),
    )
    escalations = Escalation.objects.aggregate(
        open=Count("id", filter=Q(status__in=UNRESOLVED)),
        resolved=Count("id", filter=Q(status=Escalation.Status.RESOLVED)),
        avg_resolution=Avg(
            _duration("resolved_at", "created_at"),
            filter=Q(status=Escalation.Status.RESOLVED, resolved_at__isnull=False),
        ),
        responded=Count("id", filter=Q(first_response_at__isnull=False)),
    )
    messages = Message.objects.aggregate(
        total=Count("id"),
        last_24h=Count("id", filter=Q(created_at__gte=now - timedelta(hours=24))),
    )
    intents = dict(
        Message.objects.filter(role=Message.Role.CUSTOMER, intent__isnull=False)
        .exclude(intent="")
        .values_list("intent")
        .annotate(n=Count("id"))
        .order_by("-n", "intent")
        .values_list("intent", "n")
    )
    total = conversations["total"]
    return {
        "conversations_total": total,
        "conversations_active": conversations["active"],
        "conversations_escalated": conversations["escalated"],
        "escalations_open": escalations["open"],
        "escalations_resolved": escalations["resolved"],
        "escalation_rate": conversations["ever_escalated"] / total if total else 0.0,
        "avg_resolution_seconds": _seconds(escalations["avg_resolution"]),
        "median_first_response_seconds": _median_first_response_seconds(
            count=escalations["responded"]
        ),
        "conversations_resolved_by_agent": conversations["resolved_by_agent"],
        "messages_total": messages["total"],
        "messages_last_24h": messages["last_24h"],
        "intents": intents,
    }


def _median_first_response_seconds(*, count: int) -> float | None:
    """Median of (first_response_at - created_at) without database-specific functions: the
    count is known, so fetch the one or two middle rows of the ordered durations (SQLite has
    no PERCENTILE_CONT; PostgreSQL would, but one code path serves both)."""
    if count == 0:
        return None
    lower, upper = (count - 1) // 2, count // 2
    middle = list(
        Escalation.objects.filter(first_response_at__isnull=False)
        .annotate(waited=_duration("first_response_at", "created_at"))
        .order_by("waited", "id")
        .values_list("waited", flat=True)[lower : upper + 1]
    )
    return _seconds(sum(middle, timedelta()) / len(middle))


@dataclass(frozen=True)
class DailyCount:
    day: date
    count: int


def _per_day(queryset: QuerySet[Any], *, days: int, today: date) -> list[DailyCount]:
    start = today - timedelta(days=days - 1)
    start_at = datetime.combine(start, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    counts = dict(
        queryset.filter(created_at__gte=start_at)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    # Fill the days without rows: a fixed 30-step loop over the calendar, not over rows.
    return [
        DailyCount(day=start + timedelta(days=i), count=counts.get(start + timedelta(days=i), 0))
        for i in range(days)
    ]


def activity_per_day(*, days: int = 30, now: datetime | None = None) -> dict[str, list[DailyCount]]:
    """Messages and escalations per calendar day (the site's time zone) for the last `days`
    days, today included, zero-filled. Two GROUP BY queries."""
    today = timezone.localdate(now or timezone.now())
    return {
        "messages": _per_day(Message.objects.all(), days=days, today=today),
        "escalations": _per_day(Escalation.objects.all(), days=days, today=today),
    }
