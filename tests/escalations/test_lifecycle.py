"""open → assign → reply → resolve, through the REST API, with the transcript each step leaves
and the events pushed to the customer; illegal transitions change nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client

from accounts.models import User
from core.schemas import client_datetime
from escalations.models import Escalation
from escalations.services import OPENED_TEXT, resolved_text
from messaging.models import Conversation, Message
from messaging.services import operator_has_it_text
from tests.escalations.agents import HANDOFF_TEXT
from tests.escalations.conftest import Committed, staff_post, transcript_of
from tests.factories import ConversationFactory, MessageFactory
from tests.messages import sent
from tests.pushes import Pushes
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("scripted_agent")
def test_full_lifecycle_through_the_api(
    customer: User, operator: User, customer_client: Client, operator_client: Client
) -> None:
    first = sent(customer_client, customer, "hello", None)
    conversation_id = first["conversation_id"]
    assert (first["status"], first["agent"]) == ("success", "scripted")

    handoff = sent(customer_client, customer, "I want a human", conversation_id)
    escalation = Escalation.objects.get(conversation_id=conversation_id)
    assert handoff["status"] == "escalated"
    assert handoff["metadata"]["escalated"] is True
    assert handoff["metadata"]["escalation_id"] == escalation.pk
    assert (escalation.status, escalation.reason, escalation.intent) == (
        "open",
        "Customer asked for a human",
        "human_request",
    )

    assigned = staff_post(operator_client, conversation_id, "assign")
    assert assigned.status_code == 200
    assert assigned.json() == {
        "id": escalation.pk,
        "conversation_id": conversation_id,
        "customer_id": customer.pk,
        "status": "assigned",
        "reason": "Customer asked for a human",
        "created_at": assigned.json()["created_at"],
        "assigned_to": operator.pk,
        "resolved_at": None,
        "resolution_notes": "",
        # Counted from the hand-off: 15 and 480 minutes (the defaults; no business hours).
        "first_response_due": client_datetime(escalation.created_at + timedelta(minutes=15)),
        "resolution_due": client_datetime(escalation.created_at + timedelta(minutes=480)),
        "first_responded_at": None,
        "sla_breached": [],
    }

    reply = staff_post(
        operator_client,
        conversation_id,
        "reply",
        {"message": "  Hi, Olivia here. How can I help?  "},
    )
    assert reply.status_code == 201
    stored_reply = Message.objects.get(conversation_id=conversation_id, role="operator")
    assert reply.json() == {
        "id": stored_reply.pk,
        "seq": 7,
        "role": "operator",
        "content": "Hi, Olivia here. How can I help?",
        "intent": None,
        "confidence": None,
        "created_at": reply.json()["created_at"],
        "author_name": operator.public_name,
    }
    assert stored_reply.author_id == operator.pk

    # While escalated the agent stays silent. Olivia has joined and answered, so nothing
    # promises that "an operator will answer": the answer names her and enters no transcript.
    waiting = sent(customer_client, customer, "are you there?", conversation_id)
    assert (waiting["status"], waiting["agent"], waiting["response"]) == (
        "escalated",
        "system",
        operator_has_it_text(operator.public_name),
    )
    assert waiting["metadata"]["escalation_id"] == escalation.pk
    assert waiting["message_id"] == waiting["metadata"]["customer_message_id"]
    assert waiting["metadata"]["seq"] == waiting["metadata"]["customer_message_seq"] == 8

    resolved = staff_post(
        operator_client,
        conversation_id,
        "resolve",
        {"resolution_notes": "Refunded the double charge."},
    )
    assert resolved.status_code == 200
    assert resolved.json() == {"status": "resolved", "conversation_id": conversation_id}

    after = sent(customer_client, customer, "thanks a lot", conversation_id)
    assert (after["status"], after["agent"], after["response"]) == (
        "success",
        "scripted",
        "Agent: thanks a lot",
    )

    joined = f"{operator.get_short_name() or operator.username} joined the conversation."
    assert transcript_of(conversation_id) == [
        (1, "customer", "hello"),
        (2, "agent", "Agent: hello"),
        (3, "customer", "I want a human"),
        (4, "agent", HANDOFF_TEXT),
        (5, "system", OPENED_TEXT),
        (6, "system", joined),
        (7, "operator", "Hi, Olivia here. How can I help?"),
        (8, "customer", "are you there?"),
        (9, "system", resolved_text(operator.public_name)),
        (10, "customer", "thanks a lot"),
        (11, "agent", "Agent: thanks a lot"),
    ]
    escalation.refresh_from_db()
    assert escalation.status == "resolved"
    assert escalation.resolved_by_id == operator.pk
    assert escalation.assigned_to_id == operator.pk
    assert escalation.resolution_notes == "Refunded the double charge."
    assert escalation.first_response_at == stored_reply.created_at
    assert escalation.created_at <= escalation.assigned_at <= escalation.first_response_at
    assert escalation.first_response_at <= escalation.resolved_at
    conversation = Conversation.objects.get(pk=conversation_id)
    assert (conversation.status, conversation.turn_count, conversation.last_seq) == (
        "active",
        4,
        11,
    )

    # The customer's own history carries the system messages too.
    history = customer_client.get(f"/api/v1/conversations/{conversation_id}/history")
    assert [m["seq"] for m in history.json()["messages"]] == list(range(1, 12))


@pytest.mark.usefixtures("scripted_agent")
def test_customer_can_escalate_again_after_resolution(
    customer: User, customer_client: Client, operator_client: Client
) -> None:
    conversation_id = sent(customer_client, customer, "human please", None)["conversation_id"]
    staff_post(operator_client, conversation_id, "resolve", {"resolution_notes": ""})

    again = sent(customer_client, customer, "human again", conversation_id)

    assert again["status"] == "escalated"
    statuses = list(
        Escalation.objects.filter(conversation_id=conversation_id)
        .order_by("id")
        .values_list("status", flat=True)
    )
    assert statuses == ["resolved", "open"]


def test_reply_pushes_the_message_to_the_customer_live(
    operator_client: Client, pushed: Pushes, committed: Committed, escalation: Escalation
) -> None:
    reply = {"message": "Hello!"}
    response = committed(
        lambda: staff_post(operator_client, escalation.conversation_id, "reply", reply)
    )

    assert response.status_code == 201
    group = f"conversation.{escalation.conversation_id}"
    # Replying to an unassigned escalation assigns it first ("... joined"), then the reply:
    # two changes, two pushes.
    assert [e["type"] for g, e in pushed if g == group] == ["messages.created"] * 2
    system_message, operator_message = pushed.messages(group)
    assert (system_message["role"], operator_message["role"]) == ("system", "operator")
    # Same item as the REST answer (the REST encoder shortens timestamps to milliseconds).
    body = response.json()
    assert operator_message["created_at"][:23] == body["created_at"][:23]
    assert {**operator_message, "created_at": None} == {**body, "created_at": None}
    staff_events = [e["event"] for g, e in pushed if g == "escalations"]
    assert staff_events == ["assigned", "replied"]


def test_resolve_pushes_the_status_change(
    operator_client: Client, pushed: Pushes, committed: Committed, escalation: Escalation
) -> None:
    notes = {"resolution_notes": "done"}
    committed(lambda: staff_post(operator_client, escalation.conversation_id, "resolve", notes))

    group = f"conversation.{escalation.conversation_id}"
    assert [e for g, e in pushed if g == group and e["type"] == "conversation.status"] == [
        {"type": "conversation.status", "status": "resolved", "escalation_id": escalation.pk}
    ]


def test_reply_without_open_escalation_is_409_and_changes_nothing(
    customer: User, operator_client: Client
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", content="hi")
    before = database_state()

    response = staff_post(operator_client, conversation.pk, "reply", {"message": "Hello"})

    assert response.status_code == 409
    assert response.json() == {"detail": "This conversation is not escalated"}
    assert database_state() == before


@pytest.mark.parametrize("action", ["assign", "resolve"])
def test_assign_or_resolve_without_open_escalation_is_404_and_changes_nothing(
    customer: User, operator_client: Client, action: str
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", content="hi")
    before = database_state()

    body = {"resolution_notes": "x"} if action == "resolve" else {}
    response = staff_post(operator_client, conversation.pk, action, body)

    assert response.status_code == 404
    assert response.json() == {"detail": "This conversation has no open escalation"}
    assert database_state() == before


def test_double_resolve_is_404_and_changes_nothing(
    operator_client: Client, operator: User, escalation: Escalation
) -> None:
    cid = escalation.conversation_id
    first = staff_post(operator_client, cid, "resolve", {"resolution_notes": "first"})
    after_first = database_state()

    second = staff_post(operator_client, cid, "resolve", {"resolution_notes": "second"})

    assert first.status_code == 200
    assert second.status_code == 404
    assert database_state() == after_first
    assert Escalation.objects.get(pk=escalation.pk).resolution_notes == "first"
    # Seq 1-3 are the hand-off; resolving adds exactly one system message, once.
    assert [m for m in transcript_of(escalation.conversation_id) if m[0] > 3] == [
        (4, "system", resolved_text(operator.public_name))
    ]


def test_reply_after_resolve_is_409(operator_client: Client, escalation: Escalation) -> None:
    staff_post(operator_client, escalation.conversation_id, "resolve", {"resolution_notes": ""})
    before = database_state()

    response = staff_post(operator_client, escalation.conversation_id, "reply", {"message": "late"})

    assert response.status_code == 409
    assert database_state() == before


def test_assigning_twice_to_oneself_adds_nothing(
    operator_client: Client, escalation: Escalation
) -> None:
    staff_post(operator_client, escalation.conversation_id, "assign")
    before = database_state()

    again = staff_post(operator_client, escalation.conversation_id, "assign")

    assert again.status_code == 200
    assert again.json()["status"] == "assigned"
    assert database_state() == before


@pytest.fixture
def held_by_colleague(
    second_operator: User, client_for: Callable[..., Client], escalation: Escalation
) -> Escalation:
    """The escalation, assigned to second_operator (who took it themselves, over REST)."""
    staff_post(client_for(second_operator), escalation.conversation_id, "assign")
    return escalation


def test_taking_over_one_held_by_another_operator_names_both(
    operator_client: Client, operator: User, second_operator: User, held_by_colleague: Escalation
) -> None:
    escalation = held_by_colleague
    before = transcript_of(escalation.conversation_id)

    response = staff_post(operator_client, escalation.conversation_id, "assign")

    assert response.status_code == 200
    assert response.json()["assigned_to"] == operator.pk
    assert transcript_of(escalation.conversation_id) == [
        *before,
        (
            len(before) + 1,
            "system",
            f"{operator.public_name} took over the conversation from "
            f"{second_operator.public_name}.",
        ),
    ]


def test_colleague_may_reply_to_an_assigned_escalation(
    operator: User, operator_client: Client, second_operator: User, held_by_colleague: Escalation
) -> None:
    escalation = held_by_colleague
    response = staff_post(
        operator_client, escalation.conversation_id, "reply", {"message": "Covering"}
    )

    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.role, message.author_id) == ("operator", operator.pk)
    escalation.refresh_from_db()
    assert escalation.assigned_to_id == second_operator.pk


def test_resolving_an_unassigned_escalation_assigns_it_to_the_resolver(
    operator: User, operator_client: Client, escalation: Escalation
) -> None:
    staff_post(
        operator_client, escalation.conversation_id, "resolve", {"resolution_notes": "  trimmed  "}
    )

    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to_id, escalation.resolved_by_id) == (
        "resolved",
        operator.pk,
        operator.pk,
    )
    assert escalation.resolution_notes == "trimmed"
    assert escalation.first_response_at is None


def test_service_refuses_a_customer_actor(
    escalated: Callable[..., Escalation], customer: User
) -> None:
    from core.errors import PermissionDenied
    from escalations import services

    escalation = escalated()
    before = database_state()

    with pytest.raises(PermissionDenied):
        services.escalation_resolve(
            conversation_id=escalation.conversation_id, actor=customer, notes=""
        )
    assert database_state() == before


def test_service_refuses_to_act_on_a_newer_escalation_than_the_one_shown(
    escalated: Callable[..., Escalation], operator: User
) -> None:
    from core.errors import Conflict, NotFound
    from escalations import services
    from tests.escalations.conftest import open_escalation

    old = escalated()
    services.escalation_resolve(conversation_id=old.conversation_id, actor=operator, notes="")
    open_escalation(old.conversation)
    before = database_state()

    with pytest.raises(NotFound):
        services.escalation_resolve(
            conversation_id=old.conversation_id, actor=operator, notes="", escalation_id=old.pk
        )
    with pytest.raises(Conflict):
        services.escalation_reply(
            conversation_id=old.conversation_id, actor=operator, text="hi", escalation_id=old.pk
        )
    assert database_state() == before
