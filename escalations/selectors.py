"""Reads for operators: the escalation queue and the statistics (API and admin alike).

Every figure is an aggregate computed by the database — no Python loop over rows — so the cost
of `statistics_compute` is a fixed number of queries whatever the volume (pinned in
tests/escalations/test_statistics.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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
    Window,
)
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone

from accounts.models import User
from core.pagination import Page, keyset_page
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
) -> Page[Escalation]:
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


PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def _ranks(count: int) -> dict[str, tuple[int, int, float]]:
    """For each percentile, the 1-based ranks of the two ordered values around it and the
    weight of the upper one: linear interpolation between closest ranks (PostgreSQL's
    percentile_cont, numpy's default), so p50 of an even count is the mean of the middle two."""
    ranks = {}
    for name, fraction in PERCENTILES:
        position = fraction * (count - 1)
        lower = math.floor(position)
        ranks[name] = (lower + 1, math.ceil(position) + 1, position - lower)
    return ranks


def percentiles(
    queryset: QuerySet[Escalation],
    *,
    end: str,
    start: str = "created_at",
    counts: dict[Any, int],
    group: str | None = None,
) -> dict[Any, dict[str, float | None]]:
    """p50 / p90 / p99 of `end - start` over the rows of `queryset` where `end` is set, per
    value of `group` (None: one group, keyed None), in seconds. `counts`: how many such rows
    each group has (the caller's aggregate knows). One query whatever the volume, the same on
    SQLite and PostgreSQL: the rows are numbered in duration order by a window function and
    only the few ranks the percentiles need come back."""
    empty = {name: None for name, _ in PERCENTILES}
    ranks = {key: _ranks(n) for key, n in counts.items() if n}
    wanted = sorted({rank for per in ranks.values() for r in per.values() for rank in r[:2]})
    result: dict[Any, dict[str, float | None]] = {key: dict(empty) for key in counts}
    if not wanted:
        return result
    partition = [F(group)] if group else None
    rows = (
        queryset.filter(**{f"{end}__isnull": False})
        .annotate(
            waited=_duration(end, start),
            rank=Window(
                RowNumber(), partition_by=partition, order_by=[F("waited").asc(), F("id").asc()]
            ),
        )
        .filter(rank__in=wanted)
    )
    values: dict[Any, dict[int, timedelta]] = {}
    if group:
        for key, rank, waited in rows.values_list(group, "rank", "waited"):
            values.setdefault(key, {})[rank] = waited
    else:
        values[None] = dict(rows.values_list("rank", "waited"))
    for key, per in ranks.items():
        found = values.get(key, {})
        for name, (lower, upper, weight) in per.items():
            if lower in found and upper in found:
                low, high = found[lower], found[upper]
                result[key][name] = _seconds(low + (high - low) * weight)
    return result


@dataclass(frozen=True)
class Period:
    """A date range of the reports, both days included, in the site's time zone; either end
    may be open."""

    start: date | None = None
    end: date | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        zone = timezone.get_current_timezone()
        start = datetime.combine(self.start, time.min, tzinfo=zone) if self.start else None
        stop = (
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=zone)
            if self.end
            else None
        )
        return start, stop

    def q(self, field: str = "created_at") -> Q:
        start, stop = self.bounds()
        condition = Q()
        if start is not None:
            condition &= Q(**{f"{field}__gte": start})
        if stop is not None:
            condition &= Q(**{f"{field}__lt": stop})
        return condition


def statistics_compute(
    *, now: datetime | None = None, period: Period | None = None
) -> dict[str, Any]:
    """The figures of GET /statistics (definitions in docs/escalations.md), over the rows
    created in `period` (default: all).

    Four aggregate queries, plus one per percentile family that has values (first response,
    resolution).
    """
    now = now or timezone.now()
    period = period or Period()
    ever_escalated = Exists(Escalation.objects.filter(conversation=OuterRef("pk")))
    agent_replied = Exists(
        Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.AGENT)
    )
    conversations = Conversation.objects.filter(period.q()).aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=Conversation.Status.ACTIVE)),
        escalated=Count("id", filter=Q(status=Conversation.Status.ESCALATED)),
        ever_escalated=Count("id", filter=Q(ever_escalated)),
        resolved_by_agent=Count("id", filter=Q(agent_replied) & ~Q(ever_escalated)),
    )
    in_period = Escalation.objects.filter(period.q())
    with_sla = Q(first_response_due__isnull=False) | Q(resolution_due__isnull=False)
    escalations = in_period.aggregate(
        open=Count("id", filter=Q(status__in=UNRESOLVED)),
        resolved=Count("id", filter=Q(status=Escalation.Status.RESOLVED)),
        avg_resolution=Avg(
            _duration("resolved_at", "created_at"),
            filter=Q(status=Escalation.Status.RESOLVED, resolved_at__isnull=False),
        ),
        responded=Count("id", filter=Q(first_response_at__isnull=False)),
        finished=Count("id", filter=Q(resolved_at__isnull=False)),
        with_sla=Count("id", filter=with_sla),
        breached=Count("id", filter=with_sla & sla_breached_q(now=now)),
    )
    messages = Message.objects.filter(period.q()).aggregate(
        total=Count("id"),
        last_24h=Count("id", filter=Q(created_at__gte=now - timedelta(hours=24))),
    )
    intents = dict(
        Message.objects.filter(period.q(), role=Message.Role.CUSTOMER, intent__isnull=False)
        .exclude(intent="")
        .values_list("intent")
        .annotate(n=Count("id"))
        .order_by("-n", "intent")
        .values_list("intent", "n")
    )
    first_response = percentiles(
        in_period, end="first_response_at", counts={None: escalations["responded"]}
    )[None]
    resolution = percentiles(in_period, end="resolved_at", counts={None: escalations["finished"]})[
        None
    ]
    total = conversations["total"]
    return {
        "conversations_total": total,
        "conversations_active": conversations["active"],
        "conversations_escalated": conversations["escalated"],
        "escalations_open": escalations["open"],
        "escalations_resolved": escalations["resolved"],
        "escalation_rate": conversations["ever_escalated"] / total if total else 0.0,
        "avg_resolution_seconds": _seconds(escalations["avg_resolution"]),
        "median_first_response_seconds": first_response["p50"],
        "conversations_resolved_by_agent": conversations["resolved_by_agent"],
        "messages_total": messages["total"],
        "messages_last_24h": messages["last_24h"],
        "intents": intents,
        "first_response_seconds": first_response,
        "resolution_seconds": resolution,
        "bot_resolved_rate": (total - conversations["ever_escalated"]) / total if total else 0.0,
        "sla_breach_rate": (
            escalations["breached"] / escalations["with_sla"] if escalations["with_sla"] else 0.0
        ),
    }


@dataclass(frozen=True)
class OperatorFigures:
    operator_id: int
    name: str
    assigned: int  # escalations of the period assigned to them (held now or resolved)
    resolved: int
    breached: int
    first_response: dict[str, float | None]
    resolution: dict[str, float | None]


def operator_statistics(
    *, now: datetime | None = None, period: Period | None = None
) -> list[OperatorFigures]:
    """The admin's per-operator figures for escalations created in `period`, by assignee: how
    many, resolved, SLA breaches, and the response and resolution percentiles. Three queries
    (counts, two percentile families) plus the names, whatever the number of operators."""
    now = now or timezone.now()
    period = period or Period()
    mine = Escalation.objects.filter(period.q(), assigned_to__isnull=False)
    rows = list(
        mine.order_by()
        .values("assigned_to")
        .annotate(
            assigned=Count("id"),
            resolved=Count("id", filter=Q(status=Escalation.Status.RESOLVED)),
            breached=Count("id", filter=sla_breached_q(now=now)),
            responded=Count("id", filter=Q(first_response_at__isnull=False)),
            finished=Count("id", filter=Q(resolved_at__isnull=False)),
        )
    )
    if not rows:
        return []
    first = percentiles(
        mine,
        end="first_response_at",
        group="assigned_to",
        counts={row["assigned_to"]: row["responded"] for row in rows},
    )
    resolution = percentiles(
        mine,
        end="resolved_at",
        group="assigned_to",
        counts={row["assigned_to"]: row["finished"] for row in rows},
    )
    names = {
        user.pk: user.public_name
        for user in User.objects.filter(pk__in=[row["assigned_to"] for row in rows])
    }
    figures = [
        OperatorFigures(
            operator_id=row["assigned_to"],
            name=names.get(row["assigned_to"], f"#{row['assigned_to']}"),
            assigned=row["assigned"],
            resolved=row["resolved"],
            breached=row["breached"],
            first_response=first[row["assigned_to"]],
            resolution=resolution[row["assigned_to"]],
        )
        for row in rows
    ]
    return sorted(figures, key=lambda f: (f.name.casefold(), f.operator_id))


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
