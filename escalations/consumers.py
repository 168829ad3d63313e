"""`/ws/escalations/`: escalation opened / assigned / resolved events for operators."""

from __future__ import annotations

from typing import Any

from accounts.auth import Principal
from accounts.models import SecurityEvent
from accounts.scopes import ESCALATIONS_MANAGE
from messaging.consumers import CLOSE_FORBIDDEN, CloseSocket, TokenAuthenticatedConsumer
from messaging.realtime import ESCALATIONS_GROUP


class EscalationConsumer(TokenAuthenticatedConsumer):
    """Staff only: the user's *current* is_staff and a token holding escalations:manage, checked
    at auth and on every re-validation, so a demoted operator's socket closes with 4403."""

    socket_name = "escalations socket"

    async def authorize(self, principal: Principal) -> None:
        if not principal.user.is_staff:
            await self.record_security_event(
                SecurityEvent.Kind.TIER_DENIED, {"required": "staff"}, principal=principal
            )
            raise CloseSocket(CLOSE_FORBIDDEN, "This socket is for staff accounts only")
        if not principal.has_scope(ESCALATIONS_MANAGE):
            await self.record_security_event(
                SecurityEvent.Kind.SCOPE_DENIED,
                {"required": ESCALATIONS_MANAGE},
                principal=principal,
            )
            raise CloseSocket(CLOSE_FORBIDDEN, f"This needs the '{ESCALATIONS_MANAGE}' scope")

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
