"""GET /statistics ?from=&to=, the percentile families, the bot-resolved and SLA-breach rates,
and the admin's per-operator figures."""

from __future__ import annotations

import random
import statistics as pystats
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from escalations.models import Escalation
from escalations.selectors import Period, operator_statistics, percentiles, statistics_compute
from tests.factories import ConversationFactory, EscalationFactory, OperatorFactory

pytestmark = pytest.mark.django_db


def _escalation(created: datetime, **kwargs: Any) -> Escalation:
    return EscalationFactory(
        conversation=ConversationFactory(status="escalated", created_at=created),
        created_at=created,
        **kwargs,
    )


def _reference(values: list[float]) -> dict[str, float]:
    """An independent computation of the definition: Python's inclusive quantiles (linear
    interpolation between closest ranks)."""
    cuts = pystats.quantiles(values, n=100, method="inclusive") if len(values) > 1 else None
    if cuts is None:
        return {"p50": values[0], "p90": values[0], "p99": values[0]}
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


@pytest.mark.parametrize("count", [1, 2, 3, 10, 101])
def test_percentiles_match_an_independent_computation(count: int) -> None:
    rng = random.Random(count)
    now = timezone.now().replace(microsecond=0)
    waits = [rng.randint(1, 100_000) for _ in range(count)]
    for wait in waits:
        _escalation(now, first_response_at=now + timedelta(seconds=wait))

    found = percentiles(Escalation.objects.all(), end="first_response_at", counts={None: count})[
        None
    ]

    expected = _reference([float(w) for w in waits])
    assert found == {name: round(value, 3) for name, value in expected.items()}
    if connection.vendor == "postgresql":
        # PostgreSQL's own percentile_cont agrees.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP "
                "(ORDER BY EXTRACT(EPOCH FROM first_response_at - created_at)) "
                "FROM escalations_escalation"
            )
            (pg,) = cursor.fetchone()
        assert [found["p50"], found["p90"], found["p99"]] == [round(float(v), 3) for v in pg]


def test_per_group_percentiles_in_one_query(django_assert_num_queries: Any) -> None:
    olivia, oscar = OperatorFactory(), OperatorFactory()
    now = timezone.now().replace(microsecond=0)
    for operator, waits in ((olivia, [10, 20, 30]), (oscar, [100, 300])):
        for wait in waits:
            _escalation(now, assigned_to=operator, first_response_at=now + timedelta(seconds=wait))

    with django_assert_num_queries(1):
        found = percentiles(
            Escalation.objects.all(),
            end="first_response_at",
            group="assigned_to",
            counts={olivia.pk: 3, oscar.pk: 2},
        )

    assert found == {
        olivia.pk: {"p50": 20.0, "p90": 28.0, "p99": 29.8},
        oscar.pk: {"p50": 200.0, "p90": 280.0, "p99": 298.0},
    }


def test_date_range_counts_only_what_was_created_in_it(
    operator_client: Client, customer: User
) -> None:
    inside = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.get_current_timezone())
    _escalation(inside, first_response_at=inside + timedelta(seconds=60))
    _escalation(
        inside + timedelta(days=1), first_response_at=inside + timedelta(days=1, seconds=120)
    )
    _escalation(
        inside - timedelta(days=5), first_response_at=inside - timedelta(days=5, seconds=-999)
    )
    _escalation(
        inside + timedelta(days=5), first_response_at=inside + timedelta(days=5, seconds=999)
    )

    body = operator_client.get("/api/v1/statistics?from=2026-03-10&to=2026-03-11").json()

    assert body["conversations_total"] == 2
    assert body["escalations_open"] == 2
    assert body["first_response_seconds"] == {"p50": 90.0, "p90": 114.0, "p99": 119.4}
    assert body["bot_resolved_rate"] == 0.0
    # One side open: everything from the 11th on.
    later = operator_client.get("/api/v1/statistics?from=2026-03-11").json()
    assert later["conversations_total"] == 2
    earlier = operator_client.get("/api/v1/statistics?to=2026-03-09").json()
    assert earlier["conversations_total"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "from=2026-02-30",
        "from=yesterday",
        "to=2026-03-10T10:30:00",
        "from=2026-03-11&to=2026-03-10",
        "from=0001-01-01",
        "to=9999-12-31",
        "from=",
        "to=2026-03-10%00",
    ],
)
def test_bad_dates_are_422(operator_client: Client, query: str) -> None:
    response = operator_client.get(f"/api/v1/statistics?{query}")
    assert response.status_code == 422, response.content


def test_customer_gets_403(customer_client: Client) -> None:
    assert customer_client.get("/api/v1/statistics?from=2026-01-01").status_code == 403


def test_sla_breach_rate_over_escalations_with_due_times() -> None:
    now = timezone.now()
    soon, past = now + timedelta(hours=1), now - timedelta(minutes=1)
    _escalation(now, first_response_due=soon, resolution_due=soon)  # on time so far
    _escalation(now, first_response_due=past, resolution_due=soon)  # first reply late
    _escalation(now, first_response_due=soon, resolution_due=soon)
    _escalation(now, first_response_due=soon, resolution_due=soon)
    _escalation(now)  # no SLA: not counted

    figures = statistics_compute(now=now)

    assert figures["sla_breach_rate"] == 0.25


def test_bot_resolved_rate_is_never_escalated_over_all() -> None:
    ConversationFactory()
    ConversationFactory()
    ConversationFactory()
    _escalation(timezone.now())
    assert statistics_compute()["bot_resolved_rate"] == 0.75


def test_operator_figures(django_assert_num_queries: Any) -> None:
    olivia = OperatorFactory(display_name="Olivia")
    oscar = OperatorFactory(display_name="Oscar")
    now = timezone.now().replace(microsecond=0)
    _escalation(
        now,
        assigned_to=olivia,
        status="resolved",
        first_response_at=now + timedelta(seconds=30),
        resolved_at=now + timedelta(seconds=600),
    )
    _escalation(
        now, assigned_to=olivia, status="assigned", first_response_at=now + timedelta(seconds=90)
    )
    _escalation(
        now, assigned_to=oscar, status="assigned", first_response_due=now - timedelta(seconds=1)
    )
    _escalation(now)  # unassigned: nobody's

    with django_assert_num_queries(4):
        figures = operator_statistics(now=now + timedelta(seconds=1))

    assert [(f.name, f.assigned, f.resolved, f.breached) for f in figures] == [
        ("Olivia", 2, 1, 0),
        ("Oscar", 1, 0, 1),
    ]
    assert figures[0].first_response == {"p50": 60.0, "p90": 84.0, "p99": 89.4}
    assert figures[0].resolution == {"p50": 600.0, "p90": 600.0, "p99": 600.0}
    assert figures[1].first_response == {"p50": None, "p90": None, "p99": None}


def test_period_bounds_are_whole_days_in_the_site_zone() -> None:
    start, stop = Period(start=date(2026, 3, 10), end=date(2026, 3, 10)).bounds()
    assert start is not None
    assert stop is not None
    assert (stop - start) == timedelta(days=1)
    assert start.hour == 0
