"""What messaging, escalations and webhooks add to a customer's export and erasure. Registered
with accounts.data_rights from IntegrationsConfig.ready(): this app is the top layer, the only one
that may know all the others."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from accounts.models import User
from escalations.models import Rating
from integrations.models import WebhookEvent
from messaging.models import Conversation, Message
from messaging.realtime import conversation_erased_event, publish_on_commit
from messaging.schemas import MessageOut


def conversations_export(user: User) -> dict[str, Any]:
    """The caller's conversations with every message of their transcript (what history
    shows them). Internal notes are not messages and never appear."""
    conversations = Conversation.objects.filter(customer=user).order_by("created_at", "id")
    conversations = conversations.prefetch_related(
        Prefetch("messages", queryset=Message.objects.order_by("seq"))
    )
    return {
        "conversations": [
            {
                "id": conversation.pk,
                "status": conversation.status,
                "created_at": conversation.created_at,
                "updated_at": conversation.updated_at,
                "turn_count": conversation.turn_count,
                "messages": [
                    MessageOut.from_orm(message).model_dump()
                    for message in conversation.messages.all()
                ],
            }
            for conversation in conversations
        ]
    }


def ratings_export(user: User) -> dict[str, Any]:
    """The customer's CSAT ratings (escalations.Rating), oldest first."""
    rows = Rating.objects.filter(conversation__customer=user).order_by("created_at", "id")
    return {
        "ratings": [
            {
                "conversation_id": row.conversation_id,
                "escalation_id": row.escalation_id,
                "score": row.score,
                "comment": row.comment,
                "created_at": row.created_at,
            }
            for row in rows
        ]
    }


def conversations_disconnect_on_erase(user: User) -> None:
    """After the erasure commits, tell every socket subscribed to the customer's conversations
    to close (customer and staff watchers alike)."""
    ids = list(Conversation.objects.filter(customer=user).values_list("pk", flat=True))
    publish_on_commit([conversation_erased_event(conversation_id) for conversation_id in ids])


def webhook_events_drop_on_erase(user: User) -> None:
    """The customer's outbox events and their pending deliveries go with them: nothing about
    them is sent after they asked to be forgotten. (The foreign key cascades too; deleting
    first keeps the order explicit and the user delete small.)"""
    WebhookEvent.objects.filter(customer=user).delete()
