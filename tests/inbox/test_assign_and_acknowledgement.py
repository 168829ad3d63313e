"""Assigning to a colleague, takeovers, display names, and the one acknowledgement per
escalation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import User
from escalations.models import Escalation
from messaging.models import Message
from messaging.services import ESCALATED_ACKNOWLEDGEMENT, operator_has_it_text
from tests.escalations.agents import HANDOFF_TEXT
from tests.escalations.conftest import named, staff_post, transcript_of
from tests.factories import UserFactory
from tests.messages import sent
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db


def test_assign_to_a_colleague(
    escalated: Callable[..., Escalation], operator_client: Client, second_operator: User
) -> None:
    named(second_operator, "Oscar")
    escalation = escalated()

    response = staff_post(
        operator_client, escalation.conversation_id, "assign", {"operator_id": second_operator.pk}
    )

    assert response.status_code == 200
    assert response.json()["assigned_to"] == second_operator.pk
    assert transcript_of(escalation.conversation_id)[-1][1:] == (
        "system",
        "Oscar joined the conversation.",
    )


@pytest.mark.parametrize("who", ["customer", "inactive", "missing", "huge"])
def test_assigning_to_a_non_operator_is_422_and_changes_nothing(
    operator_client: Client, customer: User, who: str, escalation: Escalation
) -> None:
    target = {
        "customer": customer.pk,
        "inactive": UserFactory(username="gone", is_staff=True, is_active=False).pk,
        "missing": 999_999,
        "huge": 2**70,
    }[who]
    before = database_state()

    response = staff_post(
        operator_client, escalation.conversation_id, "assign", {"operator_id": target}
    )

    assert response.status_code == 422
    assert database_state() == before


def test_customer_cannot_assign(
    customer_client: Client, operator: User, escalation: Escalation
) -> None:
    before = database_state()
    response = staff_post(
        customer_client, escalation.conversation_id, "assign", {"operator_id": operator.pk}
    )
    assert response.status_code == 403
    assert database_state() == before


def test_operator_messages_and_notices_carry_the_display_name(
    escalated: Callable[..., Escalation],
    operator_client: Client,
    operator: User,
    customer_client: Client,
) -> None:
    named(operator, "Liv")
    escalation = escalated()
    cid = escalation.conversation_id
    staff_post(operator_client, cid, "reply", {"message": "Hi!"})
    staff_post(operator_client, cid, "resolve", {"resolution_notes": ""})

    history = customer_client.get(f"/api/v1/conversations/{cid}/history").json()["messages"]

    operator_items = [m for m in history if m["role"] == "operator"]
    assert [(m["content"], m["author_name"]) for m in operator_items] == [("Hi!", "Liv")]
    assert {m["author_name"] for m in history if m["role"] != "operator"} == {None}
    system = [m["content"] for m in history if m["role"] == "system"]
    assert system[-2:] == [
        "Liv joined the conversation.",
        "Liv marked this conversation as resolved. Write again any time and our assistant "
        "will pick it up.",
    ]


def test_display_name_falls_back_to_first_name_then_username() -> None:
    assert UserFactory(username="u1", first_name="Ann", display_name="").public_name == "Ann"
    assert UserFactory(username="u2", first_name="", display_name="").public_name == "u2"
    assert UserFactory(username="u3", first_name="Ann", display_name=" Annie ").public_name == (
        "Annie"
    )


# --- One acknowledgement per escalation ------------------------------------------------------


@pytest.mark.usefixtures("scripted_agent")
def test_acknowledgement_enters_the_transcript_once_per_escalation(
    customer_client: Client, customer: User, operator_client: Client
) -> None:
    cid = sent(customer_client, customer, "I want a human", None)["conversation_id"]
    first = sent(customer_client, customer, "hello?", cid)
    second = sent(customer_client, customer, "anyone there?", cid)
    staff_post(operator_client, cid, "reply", {"message": "Here!"})
    third = sent(customer_client, customer, "great", cid)

    for body in (first, second):
        assert (body["status"], body["agent"], body["response"]) == (
            "escalated",
            "system",
            ESCALATED_ACKNOWLEDGEMENT,
        )
    # Later answers point at the acknowledgement already in the transcript …
    assert first["message_id"] == second["message_id"]
    # … until an operator has joined: then nothing says "an operator will answer" again; the
    # answer names the operator, enters no transcript and points at the customer's message.
    operator_name = User.objects.get(is_staff=True).public_name
    assert (third["status"], third["agent"], third["response"]) == (
        "escalated",
        "system",
        operator_has_it_text(operator_name),
    )
    assert third["message_id"] == third["metadata"]["customer_message_id"]
    assert [row[1:] for row in transcript_of(cid)] == [
        ("customer", "I want a human"),
        ("agent", HANDOFF_TEXT),
        ("system", "Conversation passed to the support team."),
        ("customer", "hello?"),
        ("system", ESCALATED_ACKNOWLEDGEMENT),
        ("customer", "anyone there?"),
        ("system", f"{operator_name} joined the conversation."),
        ("operator", "Here!"),
        ("customer", "great"),
    ]

    # A new escalation after a resolution acknowledges again, once.
    staff_post(operator_client, cid, "resolve", {"resolution_notes": ""})
    sent(customer_client, customer, "I want a human again", cid)
    sent(customer_client, customer, "one", cid)
    sent(customer_client, customer, "two", cid)
    acknowledgements = Message.objects.filter(
        conversation_id=cid, content=ESCALATED_ACKNOWLEDGEMENT
    )
    assert acknowledgements.count() == 2
