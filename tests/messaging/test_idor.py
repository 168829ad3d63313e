"""Another customer's conversation: 404 (indistinguishable from missing) or 403 for a foreign
customer_id — and nothing changes in the database."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import SecurityEvent, User
from messaging.models import Conversation
from tests.factories import ConversationFactory, MessageFactory
from tests.messages import post_message
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs_conversation(other_customer: User) -> Conversation:
    conversation = ConversationFactory(customer=other_customer)
    MessageFactory(conversation=conversation, role="customer", content="my card ends 4242")
    MessageFactory(conversation=conversation, role="agent", content="Thanks")
    return conversation


def _refused_post(
    client: Client, as_customer: User, conversation: Conversation, status: int, **headers: str
) -> Any:
    """A message posted into `conversation` as `as_customer`: refused with `status`, and
    nothing written."""
    before = database_state()
    response = post_message(client, as_customer, "hi", conversation.pk, **headers)
    assert response.status_code == status
    assert database_state() == before
    return response


def test_history_of_someone_elses_conversation_is_404_like_a_missing_one(
    customer_client: Client, bobs_conversation: Conversation
) -> None:
    theirs = customer_client.get(f"/api/v1/conversations/{bobs_conversation.pk}/history")
    missing = customer_client.get("/api/v1/conversations/987654/history")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"detail": "Conversation not found"}
    assert "4242" not in theirs.content.decode()


def test_posting_into_someone_elses_conversation_is_404_and_writes_nothing(
    customer_client: Client, customer: User, bobs_conversation: Conversation
) -> None:
    response = _refused_post(
        customer_client, customer, bobs_conversation, 404, **{"Idempotency-Key": "k-1"}
    )
    assert response.json() == {"detail": "Conversation not found"}


def test_posting_as_another_customer_is_403_and_logged_as_idor(
    customer_client: Client,
    customer: User,
    other_customer: User,
    bobs_conversation: Conversation,
) -> None:
    _refused_post(customer_client, other_customer, bobs_conversation, 403)
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.IDOR_ATTEMPT)
    assert event.level == "CRITICAL"
    assert event.user_id == customer.pk
    assert event.path == "/api/v1/messages/process"


def test_listing_another_customers_conversations_is_403_and_logged(
    customer_client: Client, other_customer: User, bobs_conversation: Conversation
) -> None:
    response = customer_client.get(f"/api/v1/customers/{other_customer.pk}/conversations")
    assert response.status_code == 403
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.IDOR_ATTEMPT).count() == 1


def test_own_customer_listing_works(
    customer_client: Client, customer: User, bobs_conversation: Conversation
) -> None:
    mine = ConversationFactory(customer=customer)
    response = customer_client.get(f"/api/v1/customers/{customer.pk}/conversations")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [mine.pk]


def test_my_conversation_list_never_shows_others(
    customer_client: Client, bobs_conversation: Conversation
) -> None:
    assert customer_client.get("/api/v1/conversations").json() == {"items": [], "next_cursor": None}


def test_operator_reads_any_conversation(
    operator_client: Client, other_customer: User, bobs_conversation: Conversation
) -> None:
    history = operator_client.get(f"/api/v1/conversations/{bobs_conversation.pk}/history")
    assert history.status_code == 200
    assert [m["seq"] for m in history.json()["messages"]] == [1, 2]
    listing = operator_client.get(f"/api/v1/customers/{other_customer.pk}/conversations")
    assert [item["id"] for item in listing.json()["items"]] == [bobs_conversation.pk]


def test_operator_cannot_post_as_a_customer(
    operator_client: Client, other_customer: User, bobs_conversation: Conversation
) -> None:
    _refused_post(operator_client, other_customer, bobs_conversation, 403)


def test_operator_without_escalations_scope_reads_only_own(
    operator: User, client_for: Any, bobs_conversation: Conversation
) -> None:
    client = client_for(operator, {"conversations:read"})
    response = client.get(f"/api/v1/conversations/{bobs_conversation.pk}/history")
    assert response.status_code == 404


def test_demoted_operator_loses_read_access_to_others(
    operator: User, client_for: Any, bobs_conversation: Conversation
) -> None:
    client = client_for(operator)
    url = f"/api/v1/conversations/{bobs_conversation.pk}/history"
    assert client.get(url).status_code == 200
    User.objects.filter(pk=operator.pk).update(is_staff=False)
    assert client.get(url).status_code == 404
