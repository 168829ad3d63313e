"""Reads. Ownership is part of every query: another customer's conversation and a missing one
both come back as None, so callers cannot tell them apart (404 either way)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from core.pagination import keyset_page
from messaging.models import Conversation, Message, is_possible_id
from messaging.permissions import can_read_any_conversation

if TYPE_CHECKING:
    from accounts.auth import Principal
    from accounts.models import User

RECENT_MESSAGES_FOR_AGENT = 10


def conversations_readable_by(principal: Principal) -> QuerySet[Conversation]:
    if can_read_any_conversation(principal):
        return Conversation.objects.all()
    return Conversation.objects.filter(customer_id=principal.user_id)


def conversation_get_for_reader(
    *, principal: Principal, conversation_id: int
) -> Conversation | None:
    """A conversation the caller may read: their own, or any for operators."""
    if not is_possible_id(conversation_id):
        return None
    return conversations_readable_by(principal).filter(pk=conversation_id).order_by().first()


def conversation_get_for_customer(*, customer: User, conversation_id: int) -> Conversation | None:
    """A conversation the caller may write to: only their own."""
    if not is_possible_id(conversation_id):
        return None
    return Conversation.objects.filter(pk=conversation_id, customer=customer).order_by().first()


def conversation_page(
    *, customer_id: int, cursor: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """One customer's conversations, newest activity first."""
    return keyset_page(
        Conversation.objects.filter(customer_id=customer_id),
        field="updated_at",
        descending=True,
        cursor=cursor,
        limit=limit,
    )


def message_history(
    *,
    conversation: Conversation,
    limit: int,
    after_seq: int | None = None,
    before_seq: int | None = None,
) -> tuple[list[Message], bool]:
    """Messages in ascending seq and whether more exist in the direction being paged.

    after_seq → the first `limit` after it (has_more: newer remain); otherwise the latest `limit`
    before `before_seq` (or of all) (has_more: older remain). One query either way.
    """
    messages = Message.objects.filter(conversation=conversation)
    if after_seq is not None:
        messages = messages.filter(seq__gt=after_seq)
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    if after_seq is not None:
        rows = list(messages.order_by("seq")[: limit + 1])
        return rows[:limit], len(rows) > limit
    rows = list(messages.order_by("-seq")[: limit + 1])
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


def messages_after(*, conversation_id: int, after_seq: int, limit: int = 1000) -> list[Message]:
    """For websocket resume: everything after `after_seq`, oldest first."""
    return list(
        Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq).order_by("seq")[
            :limit
        ]
    )


def conversation_with_recent_messages(
    *, customer: User, conversation_id: int
) -> tuple[Conversation | None, list[Message]]:
    """The customer's own conversation and its last few messages (oldest first: what the agent
    sees), in one query on the hot path of every message. (None, []) when the conversation is
    missing or someone else's."""
    if not is_possible_id(conversation_id):
        return None, []
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, conversation__customer=customer)
        .select_related("conversation")
        .order_by("-seq")[:RECENT_MESSAGES_FOR_AGENT]
    )
    if rows:
        return rows[0].conversation, rows[::-1]
    # A conversation without messages (only created that way outside message_send).
    return conversation_get_for_customer(customer=customer, conversation_id=conversation_id), []


def conversation_transcript(*, conversation_id: int, limit: int = 200) -> tuple[list[Message], int]:
    """The latest `limit` messages of a conversation in ascending seq, and how many earlier
    ones were left out (the admin's read-only transcript on the conversation and escalation
    pages)."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author")
        .order_by("-seq")[:limit]
    )
    rows.reverse()
    omitted = rows[0].seq - 1 if rows else 0
    return rows, omitted
