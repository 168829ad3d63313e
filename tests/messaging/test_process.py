"""POST /messages/process: the customer's message and the reply, in one transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from escalations.models import Escalation
from escalations.services import OPENED_TEXT
from messaging.models import Conversation, Message
from tests.messages import post_message


@pytest.mark.django_db
def test_first_message_starts_a_conversation(customer_client: Client, customer: User) -> None:
    response = post_message(customer_client, customer, "I was charged twice for my subscription")
    assert response.status_code == 200
    body = response.json()
    conversation = Conversation.objects.get()
    reply = Message.objects.get(role="agent")
    assert body["status"] == "success"
    assert body["conversation_id"] == conversation.pk
    assert body["agent"] == "rule_based"
    assert body["intent"] == "billing"
    assert 0 <= body["confidence"] <= 1
    assert body["turn_count"] == 1
    assert body["message_id"] == reply.pk
    assert body["response"] == reply.content
    assert body["metadata"]["escalated"] is False
    assert body["metadata"]["escalation_id"] is None
    assert conversation.customer == customer
    assert [(m.seq, m.role) for m in conversation.messages.all()] == [(1, "customer"), (2, "agent")]


@pytest.mark.django_db
@pytest.mark.parametrize("new_marker", [None, 0])
def test_null_or_zero_conversation_id_starts_a_new_one(
    customer_client: Client, customer: User, new_marker: int | None
) -> None:
    first = post_message(customer_client, customer, "hello").json()["conversation_id"]
    second = post_message(customer_client, customer, "hello again", new_marker).json()[
        "conversation_id"
    ]
    assert first != second
    assert Conversation.objects.filter(customer=customer).count() == 2


@pytest.mark.django_db
def test_follow_up_continues_the_conversation(customer_client: Client, customer: User) -> None:
    conversation_id = post_message(customer_client, customer, "hi").json()["conversation_id"]
    body = post_message(
        customer_client, customer, "my app crashes when I upload", conversation_id
    ).json()
    assert body["conversation_id"] == conversation_id
    assert body["turn_count"] == 2
    assert body["intent"] == "technical"
    assert list(
        Message.objects.filter(conversation_id=conversation_id).values_list("seq", flat=True)
    ) == [1, 2, 3, 4]


@pytest.mark.django_db
def test_human_request_escalates_in_the_same_transaction(
    customer_client: Client, customer: User
) -> None:
    response = post_message(customer_client, customer, "let me talk to a person")
    body = response.json()
    escalation = Escalation.objects.get()
    assert body["status"] == "escalated"
    assert body["intent"] == "human_request"
    assert body["metadata"]["escalated"] is True
    assert body["metadata"]["escalation_id"] == escalation.pk
    assert escalation.status == "open"
    assert escalation.reason == "Customer asked for a human"
    conversation = Conversation.objects.get()
    assert conversation.status == "escalated"
    assert [(m.seq, m.role) for m in conversation.messages.all()] == [
        (1, "customer"),
        (2, "agent"),
        (3, "system"),
    ]
    assert conversation.messages.get(seq=3).content == OPENED_TEXT


@pytest.mark.django_db
def test_agent_stays_silent_while_escalated(customer_client: Client, customer: User) -> None:
    conversation_id = post_message(customer_client, customer, "I want a human").json()[
        "conversation_id"
    ]
    body = post_message(customer_client, customer, "are you there?", conversation_id).json()
    assert body["status"] == "escalated"
    assert body["agent"] == "system"
    assert "operator" in body["response"]
    assert body["metadata"]["escalation_id"] == Escalation.objects.get().pk
    roles = list(
        Message.objects.filter(conversation_id=conversation_id).values_list("role", flat=True)
    )
    assert roles == ["customer", "agent", "system", "customer", "system"]
    assert Message.objects.filter(role="agent").count() == 1


@pytest.mark.django_db
def test_internal_agent_details_never_reach_the_client(
    customer_client: Client, customer: User
) -> None:
    body = post_message(customer_client, customer, "hello").json()
    assert set(body) == {
        "response",
        "status",
        "conversation_id",
        "agent",
        "intent",
        "confidence",
        "metadata",
        "turn_count",
        "message_id",
    }
    assert set(body["metadata"]) <= {
        "escalated",
        "escalation_id",
        "fallback",
        "customer_message_id",
        "customer_message_seq",
        "seq",
    }
    assert "prompt" not in str(body).lower()


@pytest.mark.django_db
def test_turn_limit_escalates_and_counts_afresh_after_resolution(
    settings: Any, customer_client: Client, customer: User, operator: User
) -> None:
    from escalations.services import escalation_resolve

    settings.AGENT_MAX_TURNS = 3
    settings.RATE_LIMIT_MESSAGES = "100/m"
    conversation_id = post_message(customer_client, customer, "hello").json()["conversation_id"]
    assert (
        post_message(customer_client, customer, "thanks", conversation_id).json()["status"]
        == "success"
    )
    assert (
        post_message(customer_client, customer, "ok", conversation_id).json()["status"] == "success"
    )
    fourth = post_message(customer_client, customer, "and another thing", conversation_id).json()
    assert fourth["status"] == "escalated"
    assert Escalation.objects.get().reason.startswith("Turn limit")

    escalation_resolve(conversation_id=conversation_id, actor=operator, notes="done")
    after = post_message(customer_client, customer, "one more question", conversation_id).json()
    assert after["status"] == "success"
    assert after["agent"] == "rule_based"
    assert after["turn_count"] == 5
    assert Conversation.objects.get().agent_turns == 1
