"""`/ws/escalations/`: escalation opened / assigned / resolved events for operators."""

from __future__ import annotations

from typing import Any

from accounts.sockets import TokenAuthenticatedConsumer
from escalations.permissions import ESCALATION_MANAGERS
from messaging.realtime import ESCALATIONS_GROUP


class EscalationConsumer(TokenAuthenticatedConsumer):
    """Staff only: the policy of the staff REST routes (the user's *current* is_staff and a
    token holding escalations:manage), checked at auth and on every re-validation, so a demoted
    operator's socket closes with 4403."""

    socket_name = "escalations socket"
    policy = ESCALATION_MANAGERS

    async def on_authenticated(self, frame: dict[str, Any], context: Any) -> None:
        await self.channel_layer.group_add(ESCALATIONS_GROUP, self.channel_name)
        self.groups.append(ESCALATIONS_GROUP)
        await self.send_frame(self.auth_ok_frame())

    async def escalation_event(self, event: dict[str, Any]) -> None:
        if self.principal is not None:
            await self.send_frame(
                {
                    "type": "escalation.event",
                    "event": event["event"],
                    "escalation": event["escalation"],
                }
            )
