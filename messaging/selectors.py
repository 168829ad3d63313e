"""Reads. Ownership is part of every query: another customer's conversation and a missing one
both come back as None, so callers cannot tell them apart (404 either way)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.pagination import Page, keyset_page
from messaging.models import Conversation, Message, is_possible_id
from messaging.permissions import conversations_of, reader_scope

if TYPE_CHECKING:
    from accounts.auth import Principal


def conversation_get_for_reader(
    *, principal: Principal, conversation_id: int
) -> Conversation | None:
    """A conversation the caller may read: their own, or any for operators (the conversation
    socket's check; the history route reads through messaging.fastpath.history_page)."""
    if not is_possible_id(conversation_id):
        return None
    return (
        Conversation.objects.filter(conversations_of(reader_scope(principal)), pk=conversation_id)
        .order_by()
        .first()
    )


def conversation_page(*, customer_id: int, cursor: str | None, limit: int) -> Page[Conversation]:
    """One customer's conversations, newest activity first."""
    return keyset_page(
        Conversation.objects.filter(conversations_of(customer_id)),
        field="updated_at",
        descending=True,
        cursor=cursor,
        limit=limit,
    )


def messages_after(*, conversation_id: int, after_seq: int, limit: int = 1000) -> list[Message]:
    """For websocket resume: everything after `after_seq`, oldest first."""
    return list(
        Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq).order_by("seq")[
            :limit
        ]
    )


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
