"""`/ws/escalations/`: escalation opened / assigned / resolved / sla_breached events for
operators — and the operators' presence: while an operator's socket is open it holds a presence
lease (escalations.presence), renewed every PRESENCE_RENEW_SECONDS and given up on close."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from accounts.sockets import TokenAuthenticatedConsumer, run_db
from escalations import presence, services
from escalations.operators import OPERATORS_GROUP_NAME
from escalations.permissions import ESCALATION_MANAGERS
from messaging.realtime import ESCALATIONS_GROUP

logger = logging.getLogger("parley.realtime")


class EscalationConsumer(TokenAuthenticatedConsumer):
    """Staff only: the policy of the staff REST routes (the user's *current* is_staff and a
    token holding escalations:manage), checked at auth and on every re-validation, so a demoted
    operator's socket closes with 4403."""

    socket_name = "escalations socket"
    policy = ESCALATION_MANAGERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presence_user_id: int | None = None  # set while this socket holds a lease

    async def on_authenticated(self, frame: dict[str, Any], context: Any) -> None:
        await self.channel_layer.group_add(ESCALATIONS_GROUP, self.channel_name)
        self.groups.append(ESCALATIONS_GROUP)
        if self.admin_session_key is not None:
            # The admin's inbox pages show who is online; API clients get escalation events
            # only, as SPEC lists them.
            await self.channel_layer.group_add(OPERATORS_GROUP_NAME, self.channel_name)
            self.groups.append(OPERATORS_GROUP_NAME)
        principal = self.principal
        leased = False
        if principal is not None:
            try:
                leased = await run_db(
                    services.operator_lease_take, user=principal.user, socket_id=self.channel_name
                )
            except Exception:  # noqa: BLE001 - presence is best effort; the events still flow
                logger.exception("%s: presence lease failed", self.socket_name)
        await self.send_frame(self.auth_ok_frame())
        if principal is None or not leased:
            return
        self.presence_user_id = principal.user_id
        self._start("presence", self._renew_presence(principal.user_id))
        try:
            await run_db(
                services.operator_socket_joined, user=principal.user, socket_id=self.channel_name
            )
        except Exception:  # noqa: BLE001 - colleagues see it at their next refresh
            logger.exception("%s: presence announcement failed", self.socket_name)

    async def _renew_presence(self, user_id: int) -> None:
        while not self.closing:
            await asyncio.sleep(presence.PRESENCE_RENEW_SECONDS)
            try:
                lapsed = await run_db(
                    presence.lease_renew, user_id=user_id, socket_id=self.channel_name
                )
                if lapsed and self.principal is not None:
                    # Renewed too late (this process was overloaded): back online, as if the
                    # socket had just connected.
                    await run_db(
                        services.operator_socket_joined,
                        user=self.principal.user,
                        socket_id=self.channel_name,
                    )
            except Exception:  # noqa: BLE001 - try again next time; the lease outlives a miss
                logger.exception("%s: presence renewal failed", self.socket_name)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        user_id, self.presence_user_id = self.presence_user_id, None
        self._task_cancel("presence")  # no renewal may follow the release
        if user_id is not None:
            try:
                await run_db(
                    services.operator_socket_left, user_id=user_id, socket_id=self.channel_name
                )
            except Exception:  # noqa: BLE001 - the lease expires by itself
                logger.exception("%s: presence release failed", self.socket_name)
        await super().websocket_disconnect(message)

    async def escalation_event(self, event: dict[str, Any]) -> None:
        if self.principal is not None:
            await self.send_frame(
                {
                    "type": "escalation.event",
                    "event": event["event"],
                    "escalation": event["escalation"],
                }
            )

    async def operator_presence(self, event: dict[str, Any]) -> None:
        # Not one's own changes: the page that made them already shows them.
        if self.principal is not None and event["operator"]["id"] != self.principal.user_id:
            await self.send_frame(
                {
                    "type": "operator.presence",
                    "operator": event["operator"],
                    "shown": event["shown"],
                }
            )
