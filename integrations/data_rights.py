"""What messaging, escalations and webhooks add to a customer's export and erasure. Registered
with accounts.data_rights from IntegrationsConfig.ready(): this app is the top layer, the only one
that may know all the others."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models import Prefetch

from accounts.models import User
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


RATING_MODEL = "messaging.Rating"


def ratings_export(user: User) -> dict[str, Any]:
    """The customer's CSAT ratings. The Rating model arrives with the inbox work (messaging
    0003_rating); until then the section is empty."""
    # TODO(lead): once messaging.Rating is merged, pin its fields here and in the test.
    try:
        rating_model = apps.get_model(RATING_MODEL)
    except LookupError:
        return {"ratings": []}
    rows = rating_model.objects.filter(conversation__customer=user).order_by("created_at", "id")
    return {
        "ratings": [
            {
                "conversation_id": row.conversation_id,
                "escalation_id": getattr(row, "escalation_id", None),
                "score": row.score,
                "comment": getattr(row, "comment", ""),
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
