"""`/ws/conversations/<id>/`: a conversation's messages and status, live, with resume by `seq`;
the customer may also send messages through it (the same `message_send` as REST).

The socket machinery (first-frame auth, policy, timers, frame budget, close codes) is
`accounts.sockets.TokenAuthenticatedConsumer`; this module adds the conversation. Protocol
decisions are written down in docs/api.md (websocket section).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from accounts.auth import Principal
from accounts.sockets import (
    CLOSE_BAD_AUTH_FRAME,
    CLOSE_NOT_FOUND,
    CloseSocket,
    TokenAuthenticatedConsumer,
    authenticate_and_authorize,
    run_db,
)
from core.errors import InsufficientScope, NotAuthenticated, ParleyError
from core.ids import parse_id
from core.request_context import CallContext
from messaging import selectors, services
from messaging.models import Conversation
from messaging.permissions import CONVERSATION_READERS, MESSAGE_WRITERS
from messaging.realtime import (
    conversation_group,
    messages_created_event,
    socket_catch_up_register,
)
from messaging.schemas import MAX_ID, message_payload

logger = logging.getLogger("parley.realtime")

MAX_PENDING_SENDS = 5  # client `message` frames queued behind the one being processed
REPLAY_PAGE_SIZE = 500
CATCH_UP_ATTEMPTS = 5


class SeqWindow:
    """Which `seq`s this connection has already sent: everything ≤ `floor`, plus `above`.

    Publishing happens after commit in each writer's thread, so two writers to one
    conversation can publish out of seq order; a set (not a running maximum) makes sure the
    later-published lower seq still gets through. Contiguous seqs fold into `floor`.
    """

    MAX_ABOVE = 1024  # a seq that never arrives (a failed publish) must not grow this forever

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.above: set[int] = set()

    def add(self, seq: int) -> bool:
        """Record `seq`; False when it was already sent."""
        if seq <= self.floor or seq in self.above:
            return False
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)
        if len(self.above) > self.MAX_ABOVE:
            self.floor = min(self.above)
            self.above.discard(self.floor)
            while self.floor + 1 in self.above:
                self.floor += 1
                self.above.discard(self.floor)
        return True


def _after_seq(frame: dict[str, Any]) -> int | None:
    value = frame.get("after_seq")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise CloseSocket(CLOSE_BAD_AUTH_FRAME, "after_seq must be a non-negative integer")
    return value


# --- /ws/conversations/<id>/ ----------------------------------------------------------------


class ConversationConsumer(TokenAuthenticatedConsumer):
    """A conversation's messages and status changes, live, for its customer and operators;
    the customer may also send messages (the same `message_send` as REST)."""

    socket_name = "conversation socket"
    policy = CONVERSATION_READERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conversation_id = 0
        self.customer_id: int | None = None
        self.seqs = SeqWindow(0)
        self._sends: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_PENDING_SENDS)

    async def connect(self) -> None:
        # The route's `int` converter takes ASCII digits; the one id parser takes the range:
        # an id that names no possible row is 0, refused after authentication like a missing
        # conversation (4404).
        self.conversation_id = parse_id(self.scope["url_route"]["kwargs"]["conversation_id"]) or 0
        await super().connect()

    def auth_ok_frame(self) -> dict[str, Any]:
        return {"type": "auth.ok", "conversation_id": self.conversation_id}

    async def authorize(self, principal: Principal) -> Conversation:
        # The policy (CONVERSATION_READERS, as GET /history) already passed; now the object:
        # the reader's own conversation, or any for operators holding escalations:manage.
        conversation = await run_db(
            selectors.conversation_get_for_reader,
            principal=principal,
            conversation_id=self.conversation_id,
        )
        if conversation is None:
            raise CloseSocket(CLOSE_NOT_FOUND, "Conversation not found")
        return conversation

    async def on_authenticated(self, frame: dict[str, Any], context: Any) -> None:
        conversation: Conversation = context
        after_seq = _after_seq(frame)
        self.customer_id = conversation.customer_id
        # Without after_seq the client asked for "live from now": start at the last seq seen
        # before subscribing, so what commits in between is still replayed below.
        start = conversation.last_seq if after_seq is None else after_seq
        self.seqs = SeqWindow(start)
        # Subscribe first, then read: a message committed meanwhile arrives both ways and the
        # SeqWindow drops the second copy; none can fall between the read and the subscription.
        group = conversation_group(self.conversation_id)
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)
        await self.send_frame(self.auth_ok_frame())
        await self._replay(start)
        socket_catch_up_register(self)

    async def catch_up(self) -> None:
        """After an outage of the channel layer: what was committed but never pushed here
        (messaging.realtime), from the last seq this socket sent without a gap. A process that
        sat out a database restart idle still holds connections the restart ended: each fails
        once and is dropped, so the read is tried again."""
        for attempt in range(1, CATCH_UP_ATTEMPTS + 1):
            if self.closing or self.principal is None:
                return
            try:
                await self._replay(self.seqs.floor)
                return
            except Exception as exc:
                if not self.outage_met(exc) or attempt == CATCH_UP_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)

    async def _replay(self, after_seq: int) -> None:
        cursor = after_seq
        while not self.closing:
            page = await run_db(
                _messages_after_payloads,
                conversation_id=self.conversation_id,
                after_seq=cursor,
                limit=REPLAY_PAGE_SIZE,
            )
            for message in page:
                if self.seqs.add(message["seq"]):
                    await self.send_frame({"type": "message", "message": message})
            if len(page) < REPLAY_PAGE_SIZE:
                return
            cursor = page[-1]["seq"]

    # Channel-layer events (messaging.realtime) → client frames.

    async def messages_created(self, event: dict[str, Any]) -> None:
        if self.principal is None:
            return
        for message in event["messages"]:
            if self.seqs.add(int(message["seq"])):
                await self.send_frame_text(message["frame"])

    async def message_created(self, event: dict[str, Any]) -> None:
        """The one-message event of releases before `messages.created`: during a rolling
        deploy, processes of the previous release still publish it (an event without a
        handler would end the socket)."""
        _group, current = messages_created_event(self.conversation_id, [event["message"]])
        await self.messages_created(current)

    async def conversation_status(self, event: dict[str, Any]) -> None:
        if self.principal is not None:
            await self.send_frame(
                {
                    "type": "conversation.status",
                    "status": event["status"],
                    "escalation_id": event.get("escalation_id"),
                }
            )

    async def conversation_erased(self, event: dict[str, Any]) -> None:
        """The customer was erased (accounts.data_rights): the conversation no longer exists
        for anyone, so the socket closes as for a missing one."""
        await self.close_with(CLOSE_NOT_FOUND, "Conversation not found")

    # Client `message` frames.

    async def handle_frame(self, kind: str, frame: dict[str, Any]) -> bool:
        if kind != "message":
            return False
        client_msg_id = frame.get("client_msg_id")
        echo = {"client_msg_id": client_msg_id} if isinstance(client_msg_id, str) else {}
        content = frame.get("content")
        if not isinstance(content, str):
            await self.send_error("'content' must be a string", status=422, code="invalid", **echo)
            return True
        if client_msg_id is not None and not isinstance(client_msg_id, str):
            await self.send_error("'client_msg_id' must be a string", status=422, code="invalid")
            return True
        # Who may write (only the conversation's customer: anyone else gets "not found", as
        # over REST) and what text is acceptable are message_send's rules, not the socket's.
        try:
            self._sends.put_nowait(frame)
        except asyncio.QueueFull:
            await self.send_error(
                "Too many messages in flight; wait for the replies",
                status=429,
                code="too_many_in_flight",
                retry_after=1,
                **echo,
            )
            return True
        if "sender" not in self._tasks:
            self._start("sender", self._send_worker())
        return True

    async def _send_worker(self) -> None:
        """Processes the customer's messages one at a time, in order, off the receive loop, so
        a slow agent does not hold up live events or pings on this socket."""
        while not self.closing:
            frame = await self._sends.get()
            try:
                await self._send_message(frame)
            except CloseSocket as close:
                await self.close_with(close.code, close.reason)
                return
            except Exception as exc:  # noqa: BLE001 - one bad send must not end the session
                client_msg_id = frame.get("client_msg_id")
                echo = {"client_msg_id": client_msg_id} if client_msg_id else {}
                if self.outage_met(exc):
                    # Nothing was written and the client_msg_id is free again: resend it.
                    await self.send_unavailable(**echo)
                    continue
                logger.exception("websocket message send failed")
                await self.send_internal_error(**echo)

    async def _send_message(self, frame: dict[str, Any]) -> None:
        client_msg_id: str | None = frame.get("client_msg_id")
        echo = {"client_msg_id": client_msg_id} if client_msg_id is not None else {}
        self._ensure_token_fresh()
        raw_token = self.raw_token
        if raw_token is None:
            # The admin's live channel (a ticket, no token) only watches: operators write through
            # the escalation services. As for any writer who is not the conversation's customer,
            # the conversation is "not found" for writing, as over REST.
            await self.send_error("Conversation not found", status=404, code="not_found", **echo)
            return
        try:
            result = await run_db(
                _message_send_as,
                raw_token=raw_token,
                conversation_id=self.conversation_id,
                text=frame["content"],
                idempotency_key=client_msg_id,
                context=self.context,
            )
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)
        except InsufficientScope as exc:
            await self.send_error(exc.detail, status=403, code="insufficient_scope", **echo)
            return
        except ParleyError as exc:
            extra = dict(echo)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                extra["retry_after"] = retry_after
            await self.send_error(
                exc.detail, status=exc.status_code, code=_error_code(exc), **extra
            )
            return
        # Results arrive as `message` events; the ack lets a client match its client_msg_id to
        # the seqs (and learn that a retry was a replay, which pushes nothing new).
        await self.send_frame(
            {
                "type": "message.ack",
                **echo,
                "replayed": result.replayed,
                "status": result.status,
                "customer_message_seq": result.customer_message_seq,
                "reply_seq": result.reply_seq,
            }
        )


def _error_code(exc: ParleyError) -> str:
    return {
        400: "bad_request",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        413: "too_large",
        422: "invalid",
        429: "rate_limited",
    }.get(exc.status_code, "error")


def _messages_after_payloads(
    *, conversation_id: int, after_seq: int, limit: int
) -> list[dict[str, Any]]:
    return [
        message_payload(m)
        for m in selectors.messages_after(
            conversation_id=conversation_id, after_seq=after_seq, limit=limit
        )
    ]


def _message_send_as(
    *,
    raw_token: str,
    conversation_id: int,
    text: str,
    idempotency_key: str | None,
    context: CallContext,
) -> services.MessageSendResult:
    """Re-check the token (revoked, deactivated, password changed) and the policy of
    POST /messages/process, then send, in one thread hop: a message frame is authorized like a
    REST request, on the user's current state."""
    principal = authenticate_and_authorize(raw_token, MESSAGE_WRITERS, context)
    return services.message_send(
        customer=principal.user,
        conversation_id=conversation_id,
        text=text,
        idempotency_key=idempotency_key,
        context=context,
    )
