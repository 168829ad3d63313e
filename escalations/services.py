"""The escalation lifecycle: open → assign → reply → resolve. Used by the agent's hand-off
(messaging.services), the operators' REST API and the admin alike.

Every change locks the conversation row first (then the escalation), so two operators acting
at once are serialised: exactly one assign or resolve wins, and seq stays gap-free. Each step
adds the `system` message customers see and pushes events after commit.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, NotFound, UnprocessableRequest
from core.schemas import client_json
from escalations.assignment import assignment_recorded, operator_pick
from escalations.models import Escalation, OperatorProfile
from escalations.operators import AWAY, ONLINE, OperatorStatus, operator_status, presence_event
from escalations.permissions import (
    OPERATOR_PERMISSIONS,
    OPERATORS_GROUP,
    ensure_can_handle_escalations,
    is_operator,
)
from escalations.presence import lease_release, lease_renew
from escalations.schemas import MAX_RESOLUTION_NOTES_CHARS, EscalationOut
from escalations.sla import due_at
from messaging.events import (
    ESCALATION_ASSIGNED,
    ESCALATION_OPENED,
    ESCALATION_RESOLVED,
    ESCALATION_SLA_BREACHED,
    domain_event_record,
)
from messaging.handoff import HandoffState
from messaging.models import Conversation, Message
from messaging.realtime import escalation_event, publish_on_commit
from messaging.schemas import AUTHOR_NAME
from messaging.services import NewMessage, conversation_append, conversation_lock, conversation_save
from messaging.validation import clean_message_text, clean_text

logger = logging.getLogger("parley.escalations")

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


def joined_text(operator_name: str) -> str:
    return f"{operator_name} joined the conversation."


def operator_notice_markers() -> list[str]:
    """The fixed part of the notices that say an operator is in the conversation (joined, took
    over), for the chat page's badge ("Waiting for an operator" until one of them or an
    operator's message): taken from the functions that write them, so the two cannot drift."""
    gap = "\x00"
    return [joined_text(gap).split(gap)[1], takeover_text(gap, gap).split(gap)[1]]


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


def sla_due_times(created_at: datetime) -> tuple[datetime | None, datetime | None]:
    """(first_response_due, resolution_due) of an escalation opened at `created_at`: the SLA
    minutes counted in business hours (escalations.sla); None for an SLA set to 0."""

    def due(minutes: float) -> datetime | None:
        if minutes <= 0:
            return None
        return due_at(
            created_at,
            minutes,
            business_hours=settings.BUSINESS_HOURS,
            zone_name=settings.BUSINESS_TIMEZONE,
        )

    return due(settings.SLA_FIRST_RESPONSE_MINUTES), due(settings.SLA_RESOLUTION_MINUTES)


def escalation_open(
    *,
    conversation: Conversation,
    reason: str,
    intent: str | None = None,
    confidence: float | None = None,
) -> Escalation:
    """Hand the conversation to operators. The caller holds the conversation's lock inside a
    transaction (messaging.services.message_send, through messaging.handoff). Opening twice
    returns the open one. The SLA due times are set here; with ASSIGNMENT_MODE=auto the
    escalation is assigned in the same transaction when an online operator has room."""
    existing = escalation_current(conversation=conversation)
    if existing is not None:
        return existing
    now = timezone.now()
    first_response_due, resolution_due = sla_due_times(now)
    escalation = Escalation.objects.create(
        conversation=conversation,
        reason=reason[:255],
        intent=intent,
        confidence=confidence,
        created_at=now,
        first_response_due=first_response_due,
        resolution_due=resolution_due,
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
    if auto_assignment_enabled():
        operator = operator_pick()
        if operator is not None:
            _assign(conversation, escalation, operator)
            conversation_save(conversation=conversation)
        else:
            # Nobody had room, or everyone with room was taken by concurrent hand-offs: the
            # queue is looked at again once this commits.
            queue_drain_on_commit()
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
        if previous is not None:
            queue_drain_on_commit()  # the previous holder has room again
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
    assignment_recorded(user=actor, at=now)
    text = (
        takeover_text(_operator_name(actor), _operator_name(previous))
        if previous is not None
        else joined_text(_operator_name(actor))
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
            # A reply after the due time is a breach the periodic job may not have seen yet.
            sla_breaches_record(escalation=escalation, now=message.created_at)
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
        # Late (first reply or resolution) and not yet recorded by the periodic job: now.
        sla_breaches_record(escalation=escalation, now=now)
        publish_on_commit([escalation_event("resolved", escalation_payload(escalation))])
        domain_event_record(ESCALATION_RESOLVED, escalation_payload(escalation))
        queue_drain_on_commit()  # the resolver (or the holder) has room again
        return escalation


# --- SLA breaches ---------------------------------------------------------------------------


def sla_breaches_record(*, escalation: Escalation, now: datetime) -> list[str]:
    """Stamp each SLA of the (locked) escalation that is breached at `now` and not stamped yet,
    with its `escalation.sla_breached` event (webhooks) and push (/ws/escalations/), once per
    SLA: the stamp is written under the conversation's lock, so the periodic job and a late
    reply or resolution never both record one breach. Returns the SLAs stamped now."""
    stamped = []
    for kind in escalation.sla_breaches(now=now):
        field = Escalation.BREACH_FIELDS[kind]
        if getattr(escalation, field) is None:
            setattr(escalation, field, now)
            stamped.append(kind)
    if not stamped:
        return []
    escalation.save(update_fields=[Escalation.BREACH_FIELDS[kind] for kind in stamped])
    payload = escalation_payload(escalation)
    for kind in stamped:
        publish_on_commit([escalation_event("sla_breached", {**payload, "breach": kind})])
        domain_event_record(ESCALATION_SLA_BREACHED, {**payload, "breach": kind})
    return stamped


def sla_breach_check(*, escalation_id: int, conversation_id: int, now: datetime) -> list[str]:
    """The periodic job's step for one escalation: lock it as the services do (conversation,
    then escalation) and record what is breached now (`sla_breaches_record`)."""
    with transaction.atomic():
        conversation, escalation = _locked(conversation_id, escalation_id)
        if escalation is None:
            return []  # resolved meanwhile: the resolution recorded any breach
        escalation.conversation = conversation
        return sla_breaches_record(escalation=escalation, now=now)


# --- Auto-assignment -------------------------------------------------------------------------


def auto_assignment_enabled() -> bool:
    return bool(settings.ASSIGNMENT_MODE == "auto")


def assignment_queue_drain() -> int:
    """ASSIGNMENT_MODE=auto: assign waiting (open) escalations, oldest first, while an online
    operator has room; returns how many were assigned. Run after an operator comes online or
    frees capacity (resolve, takeover, capacity raised), and by the worker's periodic job as a
    safety net. Each escalation is its own transaction under the usual locks, so concurrent
    drains (several resolves at once, several processes) never assign one twice: the second
    finds it assigned and moves on."""
    if not auto_assignment_enabled():
        return 0
    assigned = 0
    passed: set[int] = set()
    while True:
        waiting = (
            Escalation.objects.filter(status=Escalation.Status.OPEN, assigned_to__isnull=True)
            .exclude(pk__in=passed)
            .order_by("created_at", "id")
            .values_list("pk", "conversation_id")
            .first()
        )
        if waiting is None:
            return assigned
        escalation_id, conversation_id = waiting
        with transaction.atomic():
            conversation, escalation = _locked(conversation_id, escalation_id)
            if escalation is None or escalation.assigned_to_id is not None:
                passed.add(escalation_id)  # resolved or taken meanwhile
                continue
            operator = operator_pick()
            if operator is None:
                return assigned  # nobody has room: the rest waits, oldest first
            escalation.conversation = conversation
            _assign(conversation, escalation, operator)
            conversation_save(conversation=conversation)
        assigned += 1


def _drain_after_commit() -> None:
    try:
        assignment_queue_drain()
    except Exception:  # noqa: BLE001 - the change committed; the periodic job drains again
        logger.exception("auto-assignment after commit failed")


def queue_drain_on_commit() -> None:
    """Drain the queue once the current transaction commits (capacity was freed in it)."""
    if auto_assignment_enabled():
        transaction.on_commit(_drain_after_commit)


# --- Presence --------------------------------------------------------------------------------


def operator_presence_set(*, actor: User, status: str) -> OperatorStatus:
    """`POST /operators/me/presence` and the inbox's away switch: "away" takes the operator out
    of routing while their inbox stays open; "online" puts them back (online again only while an
    inbox page is connected). Operators only (403). Returns their status as GET /operators
    shows it; coming back drains the queue (ASSIGNMENT_MODE=auto)."""
    ensure_can_handle_escalations(actor)
    if status not in (ONLINE, AWAY):
        raise UnprocessableRequest("status must be 'online' or 'away'", loc=("body", "status"))
    away = status == AWAY
    with transaction.atomic():
        changed = OperatorProfile.objects.filter(user=actor).exclude(away=away).update(away=away)
        if not changed:
            OperatorProfile.objects.get_or_create(user=actor, defaults={"away": away})
        current = operator_status(actor)
        publish_on_commit([presence_event(current)])
        if not away:
            queue_drain_on_commit()
    return current


def operator_lease_take(*, user: User, socket_id: str) -> bool:
    """An operator's `/ws/escalations/` socket authenticated: take its presence lease (before
    the socket's `auth.ok`, so a client that is told it is connected is also online). False
    for staff who are not operators: they hold no lease, routing never considers them."""
    if not is_operator(user):
        return False
    lease_renew(user_id=user.pk, socket_id=socket_id)
    return True


def operator_socket_joined(*, user: User, socket_id: str) -> OperatorStatus | None:
    """After `operator_lease_take`: tell the other inbox pages, and (auto mode) hand the
    operator waiting escalations."""
    if not is_operator(user):
        return None
    current = operator_status(user)
    publish_on_commit([presence_event(current)])
    if current.status == ONLINE:
        _drain_after_commit()
    return current


def operator_socket_left(*, user_id: int, socket_id: str) -> None:
    """The socket closed: give its lease up and tell the inbox pages if that was the last."""
    lease_release(user_id=user_id, socket_id=socket_id)
    user = User.objects.filter(pk=user_id).first()
    if user is not None and is_operator(user):
        publish_on_commit([presence_event(operator_status(user))])


class EscalationHandoff:
    """messaging.handoff's provider: a hand-off is an Escalation. Registered in
    EscalationsConfig.ready(), so messaging asks for it without importing this app."""

    # The hand-off is the escalation: the same call, under the interface's name.
    handoff_open = staticmethod(escalation_open)

    def handoff_current(self, *, conversation: Conversation) -> HandoffState | None:
        escalation = (
            Escalation.objects.filter(conversation=conversation)
            .exclude(status=Escalation.Status.RESOLVED)
            .select_related("assigned_to")
            .first()
        )
        if escalation is None:
            return None
        holder = escalation.assigned_to
        return HandoffState(
            id=escalation.pk, operator_name=_operator_name(holder) if holder else None
        )


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
