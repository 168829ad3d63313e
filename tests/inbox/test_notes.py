"""Internal notes: the staff routes' tier matrix, validation, and that a note never reaches the
customer (history, the conversation websocket, the message.created domain event)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import User
from escalations import inbox
from escalations.models import Escalation, InternalNote
from messaging import events
from messaging.models import Message
from tests.escalations.conftest import named
from tests.inbox.conftest import Events
from tests.realtime.conftest import access_token_for, connect_authenticated
from tests.snapshots import database_state

NOTE = "Customer is a VIP: offer the refund without arguing."


def _notes_url(conversation_id: int) -> str:
    return f"/api/v1/escalations/{conversation_id}/notes"


def _post(client: Client, conversation_id: int, body: Any = None) -> Any:
    return client.post(
        _notes_url(conversation_id),
        {"note": NOTE} if body is None else body,
        content_type="application/json",
    )


def _noted_nothing(response: Any, *statuses: int) -> None:
    """The note was refused with (one of) `statuses`, and no note was stored."""
    assert response.status_code in statuses, response.content
    assert not InternalNote.objects.exists()


@pytest.mark.django_db
def test_operator_adds_and_lists_notes(
    escalated: Callable[..., Escalation], operator_client: Client, operator: User
) -> None:
    named(operator, "Olivia P.")
    escalation = escalated()

    created = _post(operator_client, escalation.conversation_id, {"note": f"  {NOTE}  "})
    listed = operator_client.get(_notes_url(escalation.conversation_id))

    assert created.status_code == 201
    note = InternalNote.objects.get()
    assert created.json() == {
        "id": note.pk,
        "author": "Olivia P.",
        "author_id": operator.pk,
        "note": NOTE,
        "created_at": created.json()["created_at"],
    }
    assert (note.escalation_id, note.conversation_id) == (escalation.pk, escalation.conversation_id)
    assert listed.status_code == 200
    assert listed.json() == {
        "conversation_id": escalation.conversation_id,
        "items": [created.json()],
    }


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "get"])
def test_anonymous_gets_401(anonymous_client: Client, method: str, escalation: Escalation) -> None:
    response = (
        _post(anonymous_client, escalation.conversation_id)
        if method == "post"
        else anonymous_client.get(_notes_url(escalation.conversation_id))
    )
    _noted_nothing(response, 401)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "get"])
def test_customer_gets_403_even_on_their_own_conversation(
    customer_client: Client, method: str, escalation: Escalation
) -> None:
    response = (
        _post(customer_client, escalation.conversation_id)
        if method == "post"
        else customer_client.get(_notes_url(escalation.conversation_id))
    )
    _noted_nothing(response, 403)
    assert response.json() == {"detail": "This action is for staff accounts only"}


@pytest.mark.django_db
def test_demoted_operator_gets_403(
    operator: User, client_for: Callable[..., Client], escalation: Escalation
) -> None:
    client = client_for(operator)  # token issued while staff
    operator.is_staff = False
    operator.save(update_fields=["is_staff"])

    assert _post(client, escalation.conversation_id).status_code == 403
    assert client.get(_notes_url(escalation.conversation_id)).status_code == 403
    assert not InternalNote.objects.exists()


@pytest.mark.django_db
def test_token_without_escalations_scope_gets_403(
    operator: User, client_for: Callable[..., Client], escalation: Escalation
) -> None:
    client = client_for(operator, {"stats:read"})
    _noted_nothing(_post(client, escalation.conversation_id), 403)


@pytest.mark.django_db
@pytest.mark.parametrize("conversation_id", [999_999, 2**63])
def test_unknown_conversation_is_404_or_422(operator_client: Client, conversation_id: int) -> None:
    _noted_nothing(_post(operator_client, conversation_id), 404, 422)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [{"note": "   "}, {"note": "a\u0000b"}, {"note": "x" * 4001}, {"note": NOTE, "extra": 1}, {}],
    ids=["blank", "nul", "too-long", "extra-field", "missing"],
)
def test_invalid_notes_are_422_and_write_nothing(
    operator_client: Client, body: dict[str, Any], escalation: Escalation
) -> None:
    _noted_nothing(_post(operator_client, escalation.conversation_id, body), 422)


# --- A note never reaches the customer ---------------------------------------------------------


@pytest.mark.django_db
def test_note_is_not_in_the_customers_history_and_changes_no_message(
    operator_client: Client,
    customer_client: Client,
    recorded_events: Events,
    escalation: Escalation,
) -> None:
    before = database_state()
    recorded_events.clear()  # only what the note itself records

    assert _post(operator_client, escalation.conversation_id).status_code == 201

    assert database_state() == before  # no message, no seq, no status
    history = customer_client.get(
        f"/api/v1/conversations/{escalation.conversation_id}/history"
    ).json()
    assert NOTE not in str(history)
    assert not Message.objects.filter(content__contains="VIP").exists()
    # The webhook outbox listens to domain events: a note records none, least of all a
    # message.created.
    assert [t for t, _ in recorded_events if t == events.MESSAGE_CREATED] == []
    assert NOTE not in str(recorded_events)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_note_is_not_pushed_to_the_conversation_socket(
    escalated: Callable[..., Escalation], customer: User, operator: User
) -> None:
    escalation = await sync_to_async(escalated)()
    token = await sync_to_async(access_token_for)(customer)
    path = f"/ws/conversations/{escalation.conversation_id}/"
    communicator, _ = await connect_authenticated(path, token)
    try:
        # Drain the replay of the existing messages.
        while not await communicator.receive_nothing(timeout=0.3):
            await communicator.receive_json_from()
        await sync_to_async(inbox.note_add)(
            conversation_id=escalation.conversation_id, actor=operator, text=NOTE
        )
        # A reply afterwards proves the socket is live and delivering.
        from escalations import services

        await sync_to_async(services.escalation_reply)(
            conversation_id=escalation.conversation_id, actor=operator, text="Hello there"
        )
        received = []
        while not await communicator.receive_nothing(timeout=0.5):
            received.append(await communicator.receive_json_from())
        contents = [f["message"]["content"] for f in received if f["type"] == "message"]
        assert "Hello there" in contents
        assert NOTE not in str(received)
    finally:
        await communicator.disconnect()


@pytest.mark.django_db
def test_note_service_refuses_a_customer(
    escalated: Callable[..., Escalation], customer: User
) -> None:
    from core.errors import PermissionDenied

    escalation = escalated()
    with pytest.raises(PermissionDenied):
        inbox.note_add(conversation_id=escalation.conversation_id, actor=customer, text=NOTE)
    assert not InternalNote.objects.exists()
