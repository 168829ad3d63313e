"""The escalation lifecycle: open → assign → reply → resolve. Used by the agent's hand-off
(messaging.services), the operators' REST API and the admin alike.

Every change locks the conversation row first (then the escalation), so two operators acting
at once are serialised: exactly one assign or resolve wins, and seq stays gap-free. Each step
adds the `system` message customers see and pushes events after commit.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, NotFound, UnprocessableRequest
from core.schemas import client_json
from escalations.models import Escalation
from escalations.permissions import (
    OPERATOR_PERMISSIONS,
    OPERATORS_GROUP,
    ensure_can_handle_escalations,
    is_operator,
)
from escalations.schemas import MAX_RESOLUTION_NOTES_CHARS, EscalationOut
from messaging.events import (
    ESCALATION_ASSIGNED,
    ESCALATION_OPENED,
    ESCALATION_RESOLVED,
    domain_event_record,
)
from messaging.models import Conversation, Message
from messaging.realtime import escalation_event, publish_on_commit
from messaging.schemas import AUTHOR_NAME
from messaging.services import NewMessage, conversation_append, conversation_lock, conversation_save
from messaging.validation import clean_message_text, clean_text

# The hand-off is announced once, by the agent's own reply (it says why); this system message
# only marks the event in the transcript, like "Olivia joined" (docs/inbox.md).
OPENED_TEXT = "Conversation passed to the support team."


def resolved_text(operator_name: str) -> str:
    return (
        f"{operator_name} marked this conversation as resolved. Write again any time and our "
        "assistant will pick it up."
    )


def takeover_text(new_name: str, previous_name: str) -> str:
    return f"{new_name} took over the conversation from {previous_name}."


def _operator_name(user: User) -> str:
    # Customers see the operator's display name (accounts.User.public_name).
    return user.public_name


def escalation_payload(escalation: Escalation) -> dict[str, Any]:
    """An escalation as staff clients see it (REST items and /ws/escalations/ events): one
    schema for both, so they cannot drift apart."""
    return client_json(EscalationOut.from_orm(escalation))


def clean_resolution_notes(notes: str) -> str:
    """Trim and check resolution notes (may be empty). Raises UnprocessableRequest."""
    try:
        return clean_text(
            notes, what="Resolution notes", max_chars=MAX_RESOLUTION_NOTES_CHARS, allow_empty=True
        )
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "resolution_notes")) from None


def escalation_current(*, conversation: Conversation) -> Escalation | None:
    """The conversation's unresolved escalation, if any (at most one: database constraint)."""
    return (
        Escalation.objects.filter(conversation=conversation)
        .exclude(status=Escalation.Status.RESOLVED)
        .first()
    )


def _locked(
    conversation_id: int, escalation_id: int | None = None
) -> tuple[Conversation, Escalation | None]:
    """Lock the conversation, then its unresolved escalation (None if there is none, or if it
    is not `escalation_id` when one is given: a screen showing an older escalation must not act
    on a newer one it never displayed)."""
    conversation = conversation_lock(conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("Conversation not found")
    escalation = (
        Escalation.objects.select_for_update()
        .filter(conversation=conversation)
        .exclude(status=Escalation.Status.RESOLVED)
        .first()
    )
    if escalation is not None and escalation_id is not None and escalation.pk != escalation_id:
        escalation = None
    return conversation, escalation


def escalation_open(
    *,
    conversation: Conversation,
    reason: str,
    intent: str | None = None,
    confidence: float | None = None,
) -> Escalation:
    """Hand the conversation to operators. The caller holds the conversation's lock inside a
    transaction (messaging.services.message_send, through messaging.handoff). Opening twice
    returns the open one."""
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
    conversation_save(conversation=conversation, status_changed=True, escalation_id=escalation.pk)
    publish_on_commit([escalation_event("opened", escalation_payload(escalation))])
    domain_event_record(ESCALATION_OPENED, escalation_payload(escalation))
    return escalation


def escalation_assign(
    *,
    conversation_id: int,
    actor: User,
    escalation_id: int | None = None,
    assignee: User | None = None,
) -> Escalation:
    """Assign the conversation's open escalation to `assignee` (default: the actor; a colleague
    who may handle escalations too). Repeating it is harmless; taking one another operator holds
    is a takeover, recorded with a system message naming both. 404 when the conversation is
    missing or has no open escalation."""
    ensure_can_handle_escalations(actor)
    assignee = assignee or actor
    if assignee.pk != actor.pk and not is_operator(assignee):
        raise UnprocessableRequest(
            "operator_id must be an operator who may handle escalations",
            loc=("body", "operator_id"),
        )
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id, escalation_id)
        if escalation is None:
            raise NotFound("This conversation has no open escalation")
        escalation.conversation = conversation
        if escalation.assigned_to_id == assignee.pk:
            return escalation
        previous = escalation.assigned_to if escalation.assigned_to_id is not None else None
        _assign(conversation, escalation, assignee, previous=previous)
        conversation_save(conversation=conversation)
        return escalation


def _assign(
    conversation: Conversation,
    escalation: Escalation,
    actor: User,
    previous: User | None = None,
) -> None:
    now = timezone.now()
    escalation.status = Escalation.Status.ASSIGNED
    escalation.assigned_to = actor
    escalation.assigned_at = now
    escalation.save(update_fields=["status", "assigned_to", "assigned_at"])
    text = (
        takeover_text(_operator_name(actor), _operator_name(previous))
        if previous is not None
        else f"{_operator_name(actor)} joined the conversation."
    )
    conversation_append(
        conversation=conversation,
        messages=[NewMessage(role=Message.Role.SYSTEM, content=text)],
    )
    escalation.conversation = conversation
    publish_on_commit([escalation_event("assigned", escalation_payload(escalation))])
    domain_event_record(ESCALATION_ASSIGNED, escalation_payload(escalation))


def escalation_reply(
    *, conversation_id: int, actor: User, text: str, escalation_id: int | None = None
) -> Message:
    """An operator's message to the customer, pushed live. 404 for a missing conversation, 409
    when it is not escalated. An unassigned escalation is assigned to whoever replies first;
    any operator may reply to an assigned one (a colleague covering), and the message names its
    author. The first reply stamps `first_response_at` (median first response statistic)."""
    ensure_can_handle_escalations(actor)
    try:
        text = clean_message_text(text)
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "message")) from None
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id, escalation_id)
        if escalation is None:
            raise Conflict("This conversation is not escalated")
        escalation.conversation = conversation
        if escalation.assigned_to_id is None:
            _assign(conversation, escalation, actor)
        (message,) = conversation_append(
            conversation=conversation,
            messages=[
                NewMessage(
                    role=Message.Role.OPERATOR,
                    content=text,
                    author_id=actor.pk,
                    metadata={AUTHOR_NAME: _operator_name(actor)},
                )
            ],
        )
        if escalation.first_response_at is None:
            escalation.first_response_at = message.created_at
            escalation.save(update_fields=["first_response_at"])
            publish_on_commit([escalation_event("replied", escalation_payload(escalation))])
        conversation_save(conversation=conversation)
        return message


def escalation_resolve(
    *, conversation_id: int, actor: User, notes: str, escalation_id: int | None = None
) -> Escalation:
    """Close the open escalation; the customer's next message goes back to the agent.
    404 when there is nothing open, so a second resolve — or the loser of two concurrent ones —
    changes nothing. Resolving an unassigned escalation assigns it to the resolver."""
    ensure_can_handle_escalations(actor)
    notes = clean_resolution_notes(notes)
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id, escalation_id)
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
            update_fields=[
                "status",
                "resolved_at",
                "resolved_by",
                "resolution_notes",
                "assigned_to",
                "assigned_at",
            ]
        )
        conversation.status = Conversation.Status.RESOLVED
        conversation.agent_turns = 0  # the agent starts afresh after a hand-back
        conversation_append(
            conversation=conversation,
            messages=[
                NewMessage(role=Message.Role.SYSTEM, content=resolved_text(_operator_name(actor)))
            ],
        )
        conversation_save(
            conversation=conversation, status_changed=True, escalation_id=escalation.pk
        )
        escalation.conversation = conversation
        publish_on_commit([escalation_event("resolved", escalation_payload(escalation))])
        domain_event_record(ESCALATION_RESOLVED, escalation_payload(escalation))
        return escalation


class EscalationHandoff:
    """messaging.handoff's provider: a hand-off is an Escalation. Registered in
    EscalationsConfig.ready(), so messaging asks for it without importing this app."""

    def handoff_open(
        self,
        *,
        conversation: Conversation,
        reason: str,
        intent: str | None,
        confidence: float | None,
    ) -> int:
        return escalation_open(
            conversation=conversation, reason=reason, intent=intent, confidence=confidence
        ).pk

    def handoff_current_id(self, *, conversation: Conversation) -> int | None:
        escalation = escalation_current(conversation=conversation)
        return escalation.pk if escalation is not None else None


def operators_group_ensure(*, using: str = DEFAULT_DB_ALIAS) -> Group:
    """The `Operators` group with exactly OPERATOR_PERMISSIONS (what migration 0002 creates).
    Idempotent; for fixtures, seeding and the post_migrate receiver below."""
    for app_label in sorted({label for label, _ in OPERATOR_PERMISSIONS}):
        # Permissions appear only after post_migrate ran for their app; make sure they exist.
        create_permissions(django_apps.get_app_config(app_label), verbosity=0, using=using)
    group, _ = Group.objects.using(using).get_or_create(name=OPERATORS_GROUP)
    wanted = [
        Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in OPERATOR_PERMISSIONS
    ]
    group.permissions.set(wanted)
    return group


def operators_group_after_migrate(
    sender: Any, *, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
) -> None:
    """post_migrate receiver for the escalations app (to be connected in
    EscalationsConfig.ready). `flush` — run after every transactional test — empties every table,
    the migration's Operators group included, then sends post_migrate, which is how Django keeps
    permissions and content types; this keeps the group the same way, and re-syncs its
    permissions after every `migrate` in production."""
    operators_group_ensure(using=using)
