"""The escalation lifecycle: open → assign → reply → resolve. Used by the agent's hand-off
(messaging.services), the operators' REST API and the admin alike.

Every change locks the conversation row first (then the escalation), so two operators acting
at once are serialised: exactly one assign or resolve wins, and seq stays gap-free. Each step
adds the `system` message customers see and pushes events after commit.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.errors import Conflict, NotFound, UnprocessableRequest
from escalations.models import Escalation
from messaging.models import Conversation, Message
from messaging.realtime import escalation_event, publish_on_commit
from messaging.services import NewMessage, conversation_append, conversation_lock, conversation_save
from messaging.validation import clean_message_text

OPENED_TEXT = "An operator will join shortly."
RESOLVED_TEXT = (
    "An operator marked this conversation as resolved. Write again any time and our assistant "
    "will pick it up."
)


def _operator_name(user: User) -> str:
    return user.get_short_name() or user.get_username()


def escalation_payload(escalation: Escalation) -> dict[str, Any]:
    """An escalation as staff clients see it (REST items and /ws/escalations/ events)."""
    return {
        "id": escalation.pk,
        "conversation_id": escalation.conversation_id,
        "customer_id": escalation.conversation.customer_id,
        "status": escalation.status,
        "reason": escalation.reason,
        "created_at": escalation.created_at.isoformat(),
        "assigned_to": escalation.assigned_to_id,
        "resolved_at": escalation.resolved_at.isoformat() if escalation.resolved_at else None,
        "resolution_notes": escalation.resolution_notes,
    }


def escalation_current(*, conversation: Conversation) -> Escalation | None:
    """The conversation's unresolved escalation, if any (at most one: database constraint)."""
    return (
        Escalation.objects.filter(conversation=conversation)
        .exclude(status=Escalation.Status.RESOLVED)
        .first()
    )


def _locked(conversation_id: int) -> tuple[Conversation, Escalation | None]:
    conversation = conversation_lock(conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("Conversation not found")
    escalation = (
        Escalation.objects.select_for_update()
        .filter(conversation=conversation)
        .exclude(status=Escalation.Status.RESOLVED)
        .first()
    )
    return conversation, escalation


def escalation_open(
    *,
    conversation: Conversation,
    reason: str,
    intent: str | None = None,
    confidence: float | None = None,
) -> Escalation:
    """Hand the conversation to operators. The caller holds the conversation's lock inside a
    transaction (messaging.services.message_send). Opening twice returns the open one."""
    existing = escalation_current(conversation=conversation)
    if existing is not None:
        return existing
    escalation = Escalation.objects.create(
        conversation=conversation,
        reason=reason[:255],
        intent=intent,
        confidence=confidence,
    )
    escalation.conversation = conversation
    conversation.status = Conversation.Status.ESCALATED
    conversation_append(
        conversation=conversation,
        messages=[NewMessage(role=Message.Role.SYSTEM, content=OPENED_TEXT)],
    )
    conversation_save(conversation=conversation, status_changed=True,
                      escalation_id=escalation.pk)
    publish_on_commit([escalation_event("opened", escalation_payload(escalation))])
    return escalation


def escalation_assign(*, conversation_id: int, actor: User) -> Escalation:
    """Assign the conversation's open escalation to `actor`. Repeating it is harmless; taking
    one another operator holds is a 409 (reassign by resolving or in the admin)."""
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id)
        if escalation is None:
            raise NotFound("This conversation has no open escalation")
        if escalation.assigned_to_id == actor.pk:
            return escalation
        if escalation.assigned_to_id is not None:
            raise Conflict("This escalation is already assigned to another operator")
        _assign(conversation, escalation, actor)
        conversation_save(conversation=conversation)
        return escalation


def _assign(conversation: Conversation, escalation: Escalation, actor: User) -> None:
    now = timezone.now()
    escalation.status = Escalation.Status.ASSIGNED
    escalation.assigned_to = actor
    escalation.assigned_at = now
    escalation.save(update_fields=["status", "assigned_to", "assigned_at"])
    conversation_append(
        conversation=conversation,
        messages=[
            NewMessage(
                role=Message.Role.SYSTEM,
                content=f"{_operator_name(actor)} joined the conversation.",
            )
        ],
    )
    escalation.conversation = conversation
    publish_on_commit([escalation_event("assigned", escalation_payload(escalation))])


def escalation_reply(*, conversation_id: int, actor: User, text: str) -> Message:
    """An operator's message to the customer, pushed live. 404 for a missing conversation, 409
    when it is not escalated. An unassigned escalation is assigned to whoever replies first."""
    try:
        text = clean_message_text(text)
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "message")) from None
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id)
        if escalation is None:
            raise Conflict("This conversation is not escalated")
        if escalation.assigned_to_id is None:
            _assign(conversation, escalation, actor)
        if escalation.first_response_at is None:
            escalation.first_response_at = timezone.now()
            escalation.save(update_fields=["first_response_at"])
        (message,) = conversation_append(
            conversation=conversation,
            messages=[NewMessage(role=Message.Role.OPERATOR, content=text, author=actor)],
        )
        conversation_save(conversation=conversation)
        return message


def escalation_resolve(*, conversation_id: int, actor: User, notes: str) -> Escalation:
    """Close the open escalation; the customer's next message goes back to the agent.
    404 when there is nothing open, so a second resolve changes nothing."""
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id)
        if escalation is None:
            raise NotFound("This conversation has no open escalation")
        now = timezone.now()
        escalation.status = Escalation.Status.RESOLVED
        escalation.resolved_at = now
        escalation.resolved_by = actor
        escalation.resolution_notes = notes
        if escalation.assigned_to_id is None:
            escalation.assigned_to = actor
            escalation.assigned_at = now
        escalation.save(
            update_fields=["status", "resolved_at", "resolved_by", "resolution_notes",
                           "assigned_to", "assigned_at"]
        )
        conversation.status = Conversation.Status.RESOLVED
        conversation_append(
            conversation=conversation,
            messages=[NewMessage(role=Message.Role.SYSTEM, content=RESOLVED_TEXT)],
        )
        conversation_save(conversation=conversation, status_changed=True,
                          escalation_id=escalation.pk)
        escalation.conversation = conversation
        publish_on_commit([escalation_event("resolved", escalation_payload(escalation))])
        return escalation
