"""GET /statistics and statistics_compute(): every figure against a hand-computed data set, and
the number of queries pinned (aggregates, not loops over rows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from escalations.admin_views import human_duration
from escalations.selectors import activity_per_day, statistics_compute
from tests.factories import ConversationFactory, EscalationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture
def dataset(operator: User) -> dict[str, Any]:
    """Seven conversations; the expected figures are worked out by hand below.

    c1 active     2 customer (greeting) + 1 agent          — agent alone
    c2 escalated  customer billing, agent, system; escalation assigned, first reply after 90 s
    c3 resolved   customer human_request, agent; escalation resolved: reply 60 s, closed 600 s
    c4 escalated  customer complaint, agent; an old escalation resolved (reply 30 s, closed
                  300 s) and a current one assigned (reply 120 s)
    c5 active     no messages                              — not answered by the agent
    c6 active     customer technical + agent, two days ago — agent alone
    c7 escalated  customer human_request; escalation open, nobody replied yet
    """
    now = timezone.now()
    c = {
        n: ConversationFactory(status=s)
        for n, s in [
            (1, "active"),
            (2, "escalated"),
            (3, "resolved"),
            (4, "escalated"),
            (5, "active"),
            (6, "active"),
            (7, "escalated"),
        ]
    }

    def msg(conv: int, role: str, intent: str | None, at: Any = None) -> None:
        MessageFactory(
            conversation=c[conv],
            role=role,
            intent=intent,
            confidence=0.5 if intent else None,
            **({"created_at": at} if at else {}),
        )

    msg(1, "customer", "greeting")
    msg(1, "agent", "greeting")
    msg(1, "customer", "greeting")
    msg(2, "customer", "billing")
    msg(2, "agent", "billing")
    msg(2, "system", None)
    msg(3, "customer", "human_request")
    msg(3, "agent", "human_request")
    msg(4, "customer", "complaint")
    msg(4, "agent", "complaint")
    msg(6, "customer", "technical", now - timedelta(days=2))
    msg(6, "agent", "technical", now - timedelta(days=2))
    msg(7, "customer", "human_request")

    def handled(conv: int, status: str, at: Any, reply: int, **more: Any) -> None:
        """An escalation of c<conv>, opened `at`, that the operator answered `reply` s later."""
        EscalationFactory(
            conversation=c[conv],
            status=status,
            created_at=at,
            assigned_to=operator,
            first_response_at=at + _seconds(reply),
            **more,
        )

    def closed(at: Any, after: int) -> dict[str, Any]:
        return {"resolved_at": at + _seconds(after), "resolved_by": operator}

    t2, t3, t4a, t4b = (now - timedelta(hours=h) for h in (1, 3, 5, 2))
    handled(2, "assigned", t2, reply=90, assigned_at=t2)
    handled(3, "resolved", t3, reply=60, **closed(t3, 600))
    handled(4, "resolved", t4a, reply=30, **closed(t4a, 300))
    handled(4, "assigned", t4b, reply=120)
    EscalationFactory(conversation=c[7], status="open", created_at=now - timedelta(minutes=10))
    return c


EXPECTED = {
    "conversations_total": 7,
    "conversations_active": 3,  # c1, c5, c6
    "conversations_escalated": 3,  # c2, c4, c7
    "escalations_open": 3,  # c2, c4 (current), c7: open or assigned
    "escalations_resolved": 2,  # c3, c4 (old)
    "escalation_rate": 4 / 7,  # c2, c3, c4, c7 were ever escalated
    "avg_resolution_seconds": 450.0,  # (600 + 300) / 2
    "median_first_response_seconds": 75.0,  # 30, 60, 90, 120 → (60 + 90) / 2
    "conversations_resolved_by_agent": 2,  # c1, c6 (c5: the agent never answered)
    "messages_total": 13,
    "messages_last_24h": 11,  # all but c6's two
    # Customer messages only: the agent's replies carry intents too and are not counted.
    "intents": {"greeting": 2, "human_request": 2, "billing": 1, "complaint": 1, "technical": 1},
    # Linear interpolation between closest ranks (percentile_cont): 30, 60, 90, 120 …
    "first_response_seconds": {"p50": 75.0, "p90": 111.0, "p99": 119.1},
    # … and the two resolutions, 300 and 600.
    "resolution_seconds": {"p50": 450.0, "p90": 570.0, "p99": 597.0},
    "bot_resolved_rate": 3 / 7,  # c1, c5, c6 were never escalated
    "sla_breach_rate": 0.0,  # none of these escalations has a due time
}


@pytest.mark.usefixtures("dataset")
def test_figures_equal_the_hand_computed_ones(django_assert_num_queries: Any) -> None:
    # conversations, escalations, messages, intents, and the ranks of each percentile family.
    with django_assert_num_queries(6):
        figures = statistics_compute()

    assert figures == EXPECTED


@pytest.mark.usefixtures("dataset")
def test_endpoint_returns_the_figures(
    operator_client: Client, django_assert_num_queries: Any
) -> None:
    # + the caller's user row, + their Operators-group membership, + the CSAT aggregate
    with django_assert_num_queries(9):
        response = operator_client.get("/api/v1/statistics")

    assert response.status_code == 200
    assert response.json() == {**EXPECTED, "csat_average": None, "csat_responses": 0}


def test_empty_database(operator_client: Client, django_assert_num_queries: Any) -> None:
    # No percentile queries without values; + the caller's user row, + their Operators-group
    # membership, + the CSAT aggregate.
    with django_assert_num_queries(7):
        response = operator_client.get("/api/v1/statistics")

    assert response.json() == {
        "conversations_total": 0,
        "conversations_active": 0,
        "conversations_escalated": 0,
        "escalations_open": 0,
        "escalations_resolved": 0,
        "escalation_rate": 0.0,
        "avg_resolution_seconds": None,
        "median_first_response_seconds": None,
        "conversations_resolved_by_agent": 0,
        "messages_total": 0,
        "messages_last_24h": 0,
        "intents": {},
        "first_response_seconds": {"p50": None, "p90": None, "p99": None},
        "resolution_seconds": {"p50": None, "p90": None, "p99": None},
        "bot_resolved_rate": 0.0,
        "sla_breach_rate": 0.0,
        "csat_average": None,
        "csat_responses": 0,
    }


def test_median_of_an_odd_count_is_the_middle_value() -> None:
    now = timezone.now()
    for seconds in (10, 500, 40):
        EscalationFactory(
            created_at=now,
            first_response_at=now + _seconds(seconds),
            conversation=ConversationFactory(status="escalated"),
        )

    assert statistics_compute()["median_first_response_seconds"] == 40.0


def test_query_count_does_not_grow_with_the_data(django_assert_num_queries: Any) -> None:
    now = timezone.now()
    for i in range(30):
        conversation = ConversationFactory()
        MessageFactory(conversation=conversation, role="customer", intent=f"i{i % 4}")
        MessageFactory(conversation=conversation, role="agent", intent=f"i{i % 4}")
        if i % 3 == 0:
            EscalationFactory(
                conversation=conversation,
                created_at=now,
                status="resolved",
                first_response_at=now + _seconds(i),
                resolved_at=now + _seconds(99),
            )

    with django_assert_num_queries(6):
        figures = statistics_compute()
    assert figures["conversations_total"] == 30
    assert figures["escalation_rate"] == 10 / 30
    assert figures["median_first_response_seconds"] == 13.5  # 0, 3, …, 27 → (12 + 15) / 2


def test_activity_per_day_is_zero_filled_and_ends_today(
    django_assert_num_queries: Any,
) -> None:
    now = timezone.now()
    conversation = ConversationFactory()
    for days_ago in (0, 0, 3, 29, 30):  # the one 30 days ago falls outside the window
        MessageFactory(conversation=conversation, created_at=now - timedelta(days=days_ago))
    EscalationFactory(
        conversation=ConversationFactory(status="escalated"), created_at=now - timedelta(days=3)
    )

    with django_assert_num_queries(2):
        activity = activity_per_day(days=30, now=now)

    messages = activity["messages"]
    today = timezone.localdate(now)
    assert [p.day for p in messages] == [today - timedelta(days=29 - i) for i in range(30)]
    assert {(today - p.day).days: p.count for p in messages if p.count} == {0: 2, 3: 1, 29: 1}
    assert {(today - p.day).days: p.count for p in activity["escalations"] if p.count} == {3: 1}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (12.4, "12 s"),
        (60, "1 min"),
        (75, "1 min 15 s"),
        (3600, "1 h"),
        (4000, "1 h 6 min"),
        (2 * 86400, "2 d"),
        (3 * 86400 + 7200, "3 d 2 h"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text
