"""Websocket consumers (SPEC §5): first-frame token auth, resume by `seq`, live events.

`TokenAuthenticatedConsumer` holds everything both sockets share: the auth frame within
`AUTH_TIMEOUT_SECONDS`, the token's expiry timer, periodic re-validation through
`accounts.auth.principal_from_access_token` (the one JWT check of the REST API), the frame size
limit and a per-connection frame budget. `ConversationConsumer` (`/ws/conversations/<id>/`) and
`escalations.consumers.EscalationConsumer` (`/ws/escalations/`) add what they subscribe to.

Protocol decisions where SPEC is silent are written down in docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import close_old_connections
from django.utils import timezone

from accounts.admin_tickets import admin_session_check, admin_ticket_consume
from accounts.auth import Principal, principal_from_access_token
from accounts.models import SecurityEvent
from accounts.scopes import CONVERSATIONS_READ, MESSAGES_WRITE
from accounts.security import security_event_record
from config.errors import InsufficientScope, NotAuthenticated, ParleyError
from config.request_context import (
    client_ip,
    request_id_from_header,
    request_id_var,
    scope_meta,
)
from messaging import selectors, services
from messaging.models import Conversation
from messaging.realtime import conversation_group
from messaging.schemas import MAX_ID, message_payload

logger = logging.getLogger("parley.realtime")

T = TypeVar("T")

# Module constants so tests (and operators) can shorten or tune them.
AUTH_TIMEOUT_SECONDS = 10.0
REVALIDATE_SECONDS = 30.0  # revocation / deactivation / demotion re-check while connected
MAX_FRAME_BYTES = 64 * 1024
FRAME_RATE_PER_SECOND = 20.0  # per-connection budget for client frames (token bucket)
FRAME_BURST = 40
MAX_REFUSED_FRAMES = 100  # refused in a row → close 1008
MAX_PENDING_SENDS = 5  # client `message` frames queued behind the one being processed
REPLAY_PAGE_SIZE = 500

CLOSE_POLICY_VIOLATION = 1008  # frame flood
CLOSE_TOO_BIG = 1009  # frame over MAX_FRAME_BYTES
CLOSE_BAD_AUTH_FRAME = 4400  # auth frame with a valid token but a malformed `after_seq`
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403  # authenticated, but the scope or tier does not allow this socket
CLOSE_NOT_FOUND = 4404
CLOSE_AUTH_TIMEOUT = 4408

_GENERIC_AUTH_FAILURE = "Invalid or expired credentials"


class CloseSocket(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a consumer to end the connection with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def run_db(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ORM work off the event loop, concurrently with other connections.

    `database_sync_to_async` defaults to thread_sensitive=True, which outside a request puts the
    sync work of *every* websocket in the process on one shared thread: one slow agent call
    would stall every other connection. Each call here is self-contained (its own transaction),
    so any pool thread will do; the thread's database connection is released before and after
    (back to the pool with PostgreSQL), as Django does around a request.
    """
    return await sync_to_async(_closing_connections, thread_sensitive=False)(func, *args, **kwargs)


def _closing_connections(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    # django.db's own function, not channels.db's: channels' test communicator patches that
    # one to a no-op, which would leak a pooled connection per worker thread in tests.
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


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


class TokenAuthenticatedConsumer(AsyncWebsocketConsumer):
    """First-frame auth and session upkeep shared by the conversation and escalation sockets.

    Subclasses implement `authorize` (may this principal use this socket? raises `CloseSocket`),
    `on_authenticated` (subscribe, replay) and optionally `handle_frame` for their own frame
    types.
    """

    socket_name = "websocket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: list[str] = []  # joined after authentication, left on disconnect
        self.principal: Principal | None = None
        self.raw_token: str | None = None
        # Set when the admin's live channel authenticated with a ticket (no token to re-check).
        self.admin_session_key: str | None = None
        self.closing = False
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._frame_tokens = float(FRAME_BURST)
        self._frame_clock = time.monotonic()
        self._refused_in_a_row = 0
        self.request_id = ""
        self.path = ""
        self.ip: str | None = None

    # --- ASGI plumbing --------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale DB connections before *every* handler, a hop to its shared sync
        # thread per live event. ORM work here goes through `run_db`, which closes its own
        # connections, so live pushes stay on the event loop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        meta = scope_meta(self.scope)
        self.request_id = request_id_from_header(meta.get("HTTP_X_REQUEST_ID"))
        # Set in the consumer's task: log lines and security events of this connection (and
        # the tasks and threads it starts, which copy the context) carry the id.
        request_id_var.set(self.request_id)
        self.path = self.scope.get("path", "")
        self.ip = client_ip(meta)
        await self.accept()
        self._start("auth_timeout", self._auth_timeout())

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.closing = True
        self._cancel_tasks()
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups.clear()
        if self.principal is not None:
            logger.info(
                "%s closed",
                self.socket_name,
                extra={"user_id": self.principal.user_id, "code": message.get("code")},
            )
        raise StopConsumer()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        try:
            await self._receive(text_data, bytes_data)
        except CloseSocket as close:
            await self.close_with(close.code, close.reason)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if _frame_size(text_data, bytes_data) > MAX_FRAME_BYTES:
            raise CloseSocket(CLOSE_TOO_BIG, f"Frames are limited to {MAX_FRAME_BYTES} bytes")
        if self.principal is None:
            # Exactly one frame is read before authentication: it must be the auth frame.
            await self._first_frame(text_data)
            return
        if not await self._take_frame_budget():
            return
        self._ensure_token_fresh()
        if text_data is None:
            await self.send_error(
                "Binary frames are not supported; send JSON text frames",
                status=400,
                code="bad_frame",
            )
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_error("Frames must be JSON objects", status=400, code="bad_frame")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error(
                "Frames must be JSON objects with a string 'type'", status=400, code="bad_frame"
            )
            return
        kind = frame["type"]
        if kind == "auth":
            await self._reauthenticate(frame)
        elif kind == "ping":
            await self.send_frame({"type": "pong"})
        elif not await self.handle_frame(kind, frame):
            await self.send_error(
                f"Unknown frame type {kind[:40]!r}", status=400, code="unknown_type"
            )

    # --- Authentication -------------------------------------------------------------------

    async def _first_frame(self, text_data: str | None) -> None:
        frame = _json_object(text_data)
        if frame is None or frame.get("type") != "auth":
            await self._auth_failed("first frame was not an auth frame")
        token: str | None = None
        if "ticket" in frame:
            # The admin's live channel: a single-use ticket bought with the admin session
            # (accounts/admin_tickets.py) instead of a token.
            principal = await self._validate_ticket(frame["ticket"])
        else:
            token = _frame_token(frame)
            if token is None:
                await self._auth_failed("auth frame without a token")
            principal = await self._validate(token)
        self._task_cancel("auth_timeout")
        context = await self.authorize(principal)
        self.principal, self.raw_token = principal, token
        self._arm_expiry(principal.token_expires_at)
        self._start("revalidate", self._revalidate_forever())
        logger.info(
            "%s authenticated",
            self.socket_name,
            extra={"user_id": principal.user_id, "path": self.path},
        )
        await self.on_authenticated(frame, context)

    async def _reauthenticate(self, frame: dict[str, Any]) -> None:
        """A later auth frame replaces the session's token (a client refreshing before expiry
        keeps its socket). Same user only; the new token must pass every check again."""
        current = self.principal
        token = _frame_token(frame)
        if token is None:
            await self._auth_failed("auth frame without a token")
        principal = await self._validate(token)
        if current is None or principal.user_id != current.user_id:
            await self._auth_failed("auth frame for another user")
        await self.authorize(principal)
        self.principal, self.raw_token = principal, token
        self._arm_expiry(principal.token_expires_at)
        await self.send_frame(self.auth_ok_frame())

    async def _validate(self, token: str) -> Principal:
        try:
            return await run_db(principal_from_access_token, token)
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)

    async def _validate_ticket(self, ticket: Any) -> Principal:
        admin = await run_db(admin_ticket_consume, ticket)
        if admin is None:
            await self._auth_failed("invalid, used or expired admin ticket")
        self.admin_session_key = admin.session_key
        return Principal(user=admin.user, scopes=admin.scopes, method="admin_ticket")

    async def _revalidate_admin_session(self) -> None:
        """A ticket socket lives as long as its admin session: logout, a password change,
        deactivation or demotion closes it at the next re-validation."""
        principal, session_key = self.principal, self.admin_session_key
        if principal is None or session_key is None:
            return
        admin = await run_db(
            admin_session_check, user_id=principal.user_id, session_key=session_key
        )
        if admin is None:
            await self._auth_failed("admin session ended")
        renewed = Principal(user=admin.user, scopes=admin.scopes, method="admin_ticket")
        await self.authorize(renewed)
        self.principal = renewed

    async def _auth_failed(self, reason: str) -> NoReturn:
        await self.record_security_event(SecurityEvent.Kind.AUTH_FAILED, {"reason": reason})
        raise CloseSocket(CLOSE_UNAUTHENTICATED, _GENERIC_AUTH_FAILURE)

    async def authorize(self, principal: Principal) -> Any:
        """May `principal` use this socket? Return what `on_authenticated` needs, or raise
        `CloseSocket`. Called on the first auth frame, each re-auth and each re-validation."""
        raise NotImplementedError

    async def on_authenticated(self, frame: dict[str, Any], context: Any) -> None:
        raise NotImplementedError

    def auth_ok_frame(self) -> dict[str, Any]:
        return {"type": "auth.ok"}

    async def handle_frame(self, kind: str, frame: dict[str, Any]) -> bool:
        """Handle a subclass's own frame type; False when `kind` is unknown."""
        return False

    def _ensure_token_fresh(self) -> None:
        expires_at = self.principal.token_expires_at if self.principal else None
        if expires_at is not None and expires_at <= timezone.now():
            raise CloseSocket(CLOSE_UNAUTHENTICATED, "Token expired")

    # --- Timers ---------------------------------------------------------------------------

    async def _auth_timeout(self) -> None:
        await asyncio.sleep(AUTH_TIMEOUT_SECONDS)
        if self.principal is None and not self.closing:
            await self.record_security_event(
                SecurityEvent.Kind.AUTH_FAILED, {"reason": "no auth frame in time"}
            )
            await self.close_with(CLOSE_AUTH_TIMEOUT, "No auth frame in time")

    def _arm_expiry(self, expires_at: datetime | None) -> None:
        self._task_cancel("expiry")
        if expires_at is not None:
            self._start("expiry", self._expire_at(expires_at))

    async def _expire_at(self, expires_at: datetime) -> None:
        delay = (expires_at - timezone.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        await self.close_with(CLOSE_UNAUTHENTICATED, "Token expired")

    async def _revalidate_forever(self) -> None:
        """Revocation, deactivation, password changes and demotion reach open sockets within
        REVALIDATE_SECONDS (jittered, so many sockets do not re-check in lockstep)."""
        while not self.closing:
            await asyncio.sleep(REVALIDATE_SECONDS * random.uniform(0.8, 1.0))  # noqa: S311
            await self.revalidate()

    async def revalidate(self) -> None:
        raw_token = self.raw_token
        if self.closing:
            return
        if raw_token is None:
            try:
                await self._revalidate_admin_session()
            except CloseSocket as close:
                await self.close_with(close.code, close.reason)
            return
        try:
            try:
                principal = await run_db(principal_from_access_token, raw_token)
            except NotAuthenticated as exc:
                if raw_token == self.raw_token:  # not replaced by a re-auth meanwhile
                    await self._auth_failed(exc.detail)
                return
            await self.authorize(principal)
            if raw_token == self.raw_token:
                self.principal = principal
        except CloseSocket as close:
            await self.close_with(close.code, close.reason)

    def _start(self, name: str, coro: Any) -> None:
        self._task_cancel(name)
        self._tasks[name] = asyncio.ensure_future(coro)

    def _task_cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _cancel_tasks(self) -> None:
        for name in list(self._tasks):
            self._task_cancel(name)

    # --- Frame budget ---------------------------------------------------------------------

    async def _take_frame_budget(self) -> bool:
        """Token bucket per connection. Over budget, frames are refused (not processed); a
        client that keeps flooding is disconnected with 1008. Other connections are unaffected:
        nothing here is shared."""
        now = time.monotonic()
        self._frame_tokens = min(
            float(FRAME_BURST),
            self._frame_tokens + (now - self._frame_clock) * FRAME_RATE_PER_SECOND,
        )
        self._frame_clock = now
        if self._frame_tokens >= 1:
            self._frame_tokens -= 1
            self._refused_in_a_row = 0
            return True
        self._refused_in_a_row += 1
        if self._refused_in_a_row > MAX_REFUSED_FRAMES:
            raise CloseSocket(CLOSE_POLICY_VIOLATION, "Too many frames")
        if self._refused_in_a_row == 1:
            # One notice per burst, so refusing frames does not double the traffic.
            await self.send_error(
                "Too many frames; slow down", status=429, code="too_many_frames", retry_after=1
            )
        return False

    # --- Output ---------------------------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        try:
            await self.send(text_data=json.dumps(frame, separators=(",", ":")))
        except OSError:
            # The client went away mid-send (uvicorn raises ClientDisconnected); the
            # websocket.disconnect that follows leaves the groups and stops the consumer.
            self.closing = True

    async def send_error(self, detail: str, *, status: int, code: str, **extra: Any) -> None:
        """`{"type": "error", "detail"}` plus `status` (the HTTP equivalent) and `code`; the
        connection stays open."""
        await self.send_frame(
            {"type": "error", "detail": detail, "status": status, "code": code, **extra}
        )

    async def close_with(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self._cancel_tasks()
        logger.info(
            "%s closing with %s: %s",
            self.socket_name,
            code,
            reason,
            extra={
                "user_id": self.principal.user_id if self.principal else None,
                "path": self.path,
            },
        )
        try:
            await self.close(code=code, reason=reason[:120])
        except OSError:
            pass  # already gone

    async def record_security_event(
        self, kind: str, detail: dict[str, Any], *, principal: Principal | None = None
    ) -> None:
        principal = principal or self.principal
        await run_db(
            security_event_record,
            kind=kind,
            user=principal.user if principal else None,
            path=self.path,
            ip=self.ip,
            detail=detail,
        )


def _frame_size(text_data: str | None, bytes_data: bytes | None) -> int:
    if bytes_data is not None:
        return len(bytes_data)
    if text_data is None:
        return 0
    if len(text_data) > MAX_FRAME_BYTES:  # characters ≤ bytes: no need to encode
        return len(text_data)
    return len(text_data.encode("utf-8", "surrogatepass"))


def _frame_token(frame: dict[str, Any]) -> str | None:
    token = frame.get("token")
    return token if isinstance(token, str) and 0 < len(token) <= 4096 else None


def _json_object(text_data: str | None) -> dict[str, Any] | None:
    if text_data is None:
        return None
    try:
        frame = json.loads(text_data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conversation_id = 0
        self.customer_id: int | None = None
        self.seqs = SeqWindow(0)
        self._sends: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_PENDING_SENDS)

    async def connect(self) -> None:
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        await super().connect()

    def auth_ok_frame(self) -> dict[str, Any]:
        return {"type": "auth.ok", "conversation_id": self.conversation_id}

    async def authorize(self, principal: Principal) -> Conversation:
        if not principal.has_scope(CONVERSATIONS_READ):
            await self.record_security_event(
                SecurityEvent.Kind.SCOPE_DENIED,
                {"required": CONVERSATIONS_READ},
                principal=principal,
            )
            raise CloseSocket(CLOSE_FORBIDDEN, f"This needs the '{CONVERSATIONS_READ}' scope")
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

    async def message_created(self, event: dict[str, Any]) -> None:
        message = event["message"]
        if self.principal is not None and self.seqs.add(int(message["seq"])):
            await self.send_frame({"type": "message", "message": message})

    async def conversation_status(self, event: dict[str, Any]) -> None:
        if self.principal is not None:
            await self.send_frame(
                {
                    "type": "conversation.status",
                    "status": event["status"],
                    "escalation_id": event.get("escalation_id"),
                }
            )

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
        if self.principal is None or self.principal.user_id != self.customer_id:
            await self.send_error(
                "Only the conversation's customer writes here; operators reply through the "
                f"escalation (POST /api/v1/escalations/{self.conversation_id}/reply)",
                status=403,
                code="not_the_customer",
                **echo,
            )
            return True
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
            except Exception:  # noqa: BLE001 - one bad send must not end the session
                logger.exception("websocket message send failed")
                client_msg_id = frame.get("client_msg_id")
                await self.send_error(
                    "Internal server error",
                    status=500,
                    code="internal_error",
                    request_id=self.request_id,
                    **({"client_msg_id": client_msg_id} if client_msg_id else {}),
                )

    async def _send_message(self, frame: dict[str, Any]) -> None:
        client_msg_id: str | None = frame.get("client_msg_id")
        echo = {"client_msg_id": client_msg_id} if client_msg_id is not None else {}
        self._ensure_token_fresh()
        raw_token = self.raw_token
        if raw_token is None:
            return
        try:
            result = await run_db(
                _message_send_as,
                raw_token=raw_token,
                conversation_id=self.conversation_id,
                text=frame["content"],
                idempotency_key=client_msg_id,
                path=self.path,
                ip=self.ip,
            )
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)
        except InsufficientScope as exc:
            await self.record_security_event(
                SecurityEvent.Kind.SCOPE_DENIED, {"required": exc.scope}
            )
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
        body = result.body
        metadata = body.get("metadata", {})
        # Results arrive as `message` events; the ack lets a client match its client_msg_id to
        # the seqs (and learn that a retry was a replay, which pushes nothing new).
        await self.send_frame(
            {
                "type": "message.ack",
                **echo,
                "replayed": result.replayed,
                "status": body.get("status"),
                "customer_message_seq": metadata.get("customer_message_seq"),
                "reply_seq": metadata.get("seq"),
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
    path: str,
    ip: str | None,
) -> services.MessageSendResult:
    """Re-check the token (revoked, deactivated, password changed) and send, in one thread hop:
    a message frame is authorized like a REST request, on the user's current state."""
    principal = principal_from_access_token(raw_token)
    if not principal.has_scope(MESSAGES_WRITE):
        raise InsufficientScope(MESSAGES_WRITE)
    return services.message_send(
        customer=principal.user,
        conversation_id=conversation_id,
        text=text,
        idempotency_key=idempotency_key,
        path=path,
        ip=ip,
    )


async def websocket_route_not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Catch-all websocket route: refuse the handshake (HTTP 403) for an unknown path instead of
    Channels' "No route found" exception, which reaches the server log as a traceback and the
    client as a 500."""
    if scope["type"] != "websocket":
        return
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
