"""Websocket events: their shapes, their groups, and publishing them after a commit.

Services call `publish_on_commit`; consumers (messaging/consumers.py, escalations/consumers.py)
turn group events into client frames. Group names follow `conversation.<id>`; event types
`message.created` → consumer handler `message_created`.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger("parley.realtime")

ESCALATIONS_GROUP = "escalations"

Event = tuple[str, dict[str, Any]]  # (group, event)


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def message_created_event(conversation_id: int, message: dict[str, Any]) -> Event:
    return conversation_group(conversation_id), {"type": "message.created", "message": message}


def conversation_status_event(
    conversation_id: int, status: str, escalation_id: int | None
) -> Event:
    return conversation_group(conversation_id), {
        "type": "conversation.status",
        "status": status,
        "escalation_id": escalation_id,
    }


def escalation_event(kind: str, escalation: dict[str, Any]) -> Event:
    """kind: "opened" | "assigned" | "resolved" (and "replied")."""
    return ESCALATIONS_GROUP, {"type": "escalation.event", "event": kind,
                               "escalation": escalation}


def publish_on_commit(events: list[Event]) -> None:
    """Push events once the surrounding transaction commits (at once outside a transaction).

    Subscribers never see a message that was rolled back.
    """
    if events:
        transaction.on_commit(lambda: publish(events))


def publish(events: list[Event]) -> None:
    """Send now. A failed push is logged, never raised: the data is committed, and clients
    catch up through `after_seq` when they reconnect."""
    try:
        async_to_sync(_send_all)(events)
    except Exception:  # noqa: BLE001
        logger.exception("websocket push failed for %d event(s)", len(events))


async def _send_all(events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group, event in events:
        await layer.group_send(group, event)
