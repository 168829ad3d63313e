"""Ratings (CSAT): the owner rates the latest resolved escalation once; everyone else is
refused without a trace; statistics show the average and the count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from escalations import services
from escalations.models import Escalation, Rating
from messaging import events
from tests.inbox.conftest import Events

pytestmark = pytest.mark.django_db


@pytest.fixture
def escalation(resolved: Callable[..., Escalation]) -> Escalation:
    """Here the customer's escalation is a resolved one: only those can be rated."""
    return resolved()


def _rate(client: Client, conversation_id: int, body: Any = None) -> Any:
    return client.post(
        f"/api/v1/conversations/{conversation_id}/rating",
        {"score": 5, "comment": "Quick and kind"} if body is None else body,
        content_type="application/json",
    )


def _rated_nothing(response: Any, status: int) -> None:
    """The rating was refused with `status`, and no rating was stored."""
    assert response.status_code == status, response.content
    assert not Rating.objects.exists()


def test_owner_rates_the_resolved_escalation(
    customer_client: Client, customer: User, recorded_events: Events, escalation: Escalation
) -> None:
    recorded_events.clear()  # only what the rating itself records

    response = _rate(customer_client, escalation.conversation_id, {"score": 4, "comment": " ok "})

    assert response.status_code == 201
    rating = Rating.objects.get()
    assert response.json() == {
        "conversation_id": escalation.conversation_id,
        "escalation_id": escalation.pk,
        "score": 4,
        "comment": "ok",
        "created_at": response.json()["created_at"],
    }
    assert (rating.escalation_id, rating.score) == (escalation.pk, 4)
    assert recorded_events == [
        (
            events.RATING_CREATED,
            {
                "conversation_id": escalation.conversation_id,
                "customer_id": customer.pk,
                "escalation_id": escalation.pk,
                "score": 4,
                "comment": "ok",
                "created_at": rating.created_at.isoformat(),
            },
        )
    ]


def test_second_rating_is_409_and_keeps_the_first(
    customer_client: Client, escalation: Escalation
) -> None:
    assert _rate(customer_client, escalation.conversation_id).status_code == 201

    again = _rate(customer_client, escalation.conversation_id, {"score": 1})

    assert again.status_code == 409
    assert again.json() == {"detail": "You already rated this conversation"}
    assert list(Rating.objects.values_list("score", flat=True)) == [5]


def test_nothing_resolved_yet_is_409(
    customer_client: Client, escalated: Callable[..., Escalation]
) -> None:
    _rated_nothing(_rate(customer_client, escalated().conversation_id), 409)


def test_rates_the_most_recently_resolved_escalation(
    resolved: Callable[..., Escalation], customer_client: Client, operator: User
) -> None:
    first = resolved()
    from tests.escalations.conftest import open_escalation

    second = open_escalation(first.conversation)
    services.escalation_resolve(conversation_id=first.conversation_id, actor=operator, notes="")

    response = _rate(customer_client, first.conversation_id)

    assert response.status_code == 201
    assert response.json()["escalation_id"] == second.pk


def test_another_customers_conversation_is_404_and_nothing_changes(
    other_client: Client, recorded_events: Events, escalation: Escalation
) -> None:
    recorded_events.clear()
    response = _rate(other_client, escalation.conversation_id)
    _rated_nothing(response, 404)
    assert response.json() == {"detail": "Conversation not found"}
    assert recorded_events == []


def test_anonymous_gets_401(anonymous_client: Client, escalation: Escalation) -> None:
    _rated_nothing(_rate(anonymous_client, escalation.conversation_id), 401)


def test_token_without_messages_write_gets_403(
    customer: User, client_for: Callable[..., Client], escalation: Escalation
) -> None:
    client = client_for(customer, {"conversations:read"})
    _rated_nothing(_rate(client, escalation.conversation_id), 403)


def test_operator_cannot_rate_a_customers_conversation(
    operator_client: Client, escalation: Escalation
) -> None:
    _rated_nothing(_rate(operator_client, escalation.conversation_id), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"score": 0},
        {"score": 6},
        {"score": "5"},
        {"score": 4.5},
        {"score": True},
        {"score": 3, "comment": "x" * 1001},
        {"score": 3, "comment": "bad\u0000"},
        {"score": 3, "extra": 1},
        {},
    ],
    ids=["zero", "six", "string", "float", "bool", "long-comment", "nul", "extra", "missing"],
)
def test_invalid_ratings_are_422(
    customer_client: Client, body: dict[str, Any], escalation: Escalation
) -> None:
    _rated_nothing(_rate(customer_client, escalation.conversation_id, body), 422)


def test_statistics_show_the_average_and_count(
    resolved: Callable[..., Escalation],
    customer: User,
    other_customer: User,
    client_for: Callable[..., Client],
    operator_client: Client,
) -> None:
    for owner, score in ((customer, 5), (other_customer, 2)):
        escalation = resolved(owner)
        assert (
            _rate(client_for(owner), escalation.conversation_id, {"score": score}).status_code
            == 201
        )

    figures = operator_client.get("/api/v1/statistics").json()

    assert (figures["csat_average"], figures["csat_responses"]) == (3.5, 2)


def test_admin_statistics_page_shows_csat(
    customer_client: Client, operator_admin_client: Client, escalation: Escalation
) -> None:
    _rate(customer_client, escalation.conversation_id, {"score": 4})

    content = operator_admin_client.get("/admin/statistics/").content.decode()

    assert '<td id="fig-csat_average">4.00</td>' in content
    assert '<td id="fig-csat_responses">1</td>' in content


def test_database_refuses_scores_outside_1_to_5(resolved: Callable[..., Escalation]) -> None:
    from django.db import IntegrityError, transaction

    escalation = resolved()
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(conversation=escalation.conversation, escalation=escalation, score=9)
