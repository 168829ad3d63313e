"""Websocket infrastructure shared by every socket: first-frame token auth, the route policy,
the token's expiry timer, periodic re-validation, the user's socket cap (accounts.socket_slots),
the frame size limit and budget, close codes, and a receive path no frame can break.

`TokenAuthenticatedConsumer` authenticates with `accounts.auth.principal_from_access_token`
(the one JWT check of the REST API) and authorizes with the consumer's `policy`, the same
`accounts.auth.Policy` objects the REST routes declare, so a socket and a route refuse a
caller alike. Subclasses (messaging.consumers.ConversationConsumer,
escalations.consumers.EscalationConsumer) add the object they subscribe to and their own frame
types. Lives in accounts because it knows identities and policies, not conversations.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from accounts.admin_tickets import AdminSession, admin_session_check, admin_ticket_consume
from accounts.auth import Policy, Principal, principal_from_access_token
from accounts.models import SecurityEvent
from accounts.security import security_event_record
from accounts.socket_events import user_sockets_group
from accounts.socket_slots import socket_slot_give_back, socket_slot_take
from core.errors import InsufficientScope, NotAuthenticated, PermissionDenied
from core.outages import RETRY_AFTER_SECONDS, dependency_of, outage_report
from core.parsing import JsonTooDeep, MalformedRequest, json_loads
from core.request_context import (
    CallContext,
    request_id_from_header,
    request_id_var,
    scope_meta,
)

logger = logging.getLogger("parley.realtime")

T = TypeVar("T")

# Module constants so tests (and operators) can shorten or tune them.
AUTH_TIMEOUT_SECONDS = 10.0
REVALIDATE_SECONDS = 30.0  # revocation / deactivation / demotion re-check while connected
MAX_FRAME_BYTES = 64 * 1024
FRAME_RATE_PER_SECOND = 20.0  # per-connection budget for client frames (token bucket)
FRAME_BURST = 40
MAX_REFUSED_FRAMES = 100  # refused in a row → close 1008
TASK_CANCEL_GRACE_SECONDS = 1.0  # how long a disconnect waits for cancelled tasks to finish

CLOSE_POLICY_VIOLATION = 1008  # frame flood
CLOSE_TRY_AGAIN_LATER = 1013  # the database or Redis is unavailable while authenticating
CLOSE_TOO_BIG = 1009  # frame over MAX_FRAME_BYTES
CLOSE_BAD_AUTH_FRAME = 4400  # auth frame with a valid token but a malformed field
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403  # authenticated, but the policy (tier or scope) refuses this socket
CLOSE_NOT_FOUND = 4404
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_TOO_MANY_SOCKETS = 4429  # the user already holds WS_MAX_SOCKETS_PER_USER sockets
CLOSE_TRY_AGAIN_LATER = 1013  # the shared slot store (Redis) did not answer

_GENERIC_AUTH_FAILURE = "Invalid or expired credentials"
UNAVAILABLE = "Service temporarily unavailable"


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


async def _off_loop(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Blocking non-database work (a Redis round trip) on a pool thread, off the event loop."""
    return await sync_to_async(func, thread_sensitive=False)(*args, **kwargs)


def _closing_connections(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    # django.db's own function, not channels.db's: channels' test communicator patches that
    # one to a no-op, which would leak a pooled connection per worker thread in tests.
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


def authenticate_and_authorize(
    raw_token: str, policy: Policy | None, context: CallContext
) -> Principal:
    """The token check and the route policy in one thread hop. Raises NotAuthenticated,
    PermissionDenied or InsufficientScope (each refusal recorded by `Policy.enforce`)."""
    principal = principal_from_access_token(raw_token)
    if policy is not None:
        policy.enforce(principal, context)
    return principal


def _admin_principal(
    admin: AdminSession | None, policy: Policy | None, context: CallContext
) -> Principal:
    if admin is None:
        raise NotAuthenticated("invalid, used or expired admin ticket, or the admin session ended")
    principal = Principal(
        user=admin.user, scopes=admin.scopes, method="admin_ticket", amr=admin.amr
    )
    if policy is not None:
        policy.enforce(principal, context)
    return principal


def ticket_authenticate_and_authorize(
    ticket: Any, policy: Policy | None, context: CallContext
) -> tuple[Principal, str]:
    """The admin's live channel: redeem a single-use ticket bought with the admin session
    (accounts/admin_tickets.py), then the same route policy as a token. Returns the principal
    and the admin session it rides on (re-checked on every re-validation)."""
    admin = admin_ticket_consume(ticket)
    return _admin_principal(admin, policy, context), admin.session_key if admin else ""


def admin_session_authorize(
    user_id: int, session_key: str, policy: Policy | None, context: CallContext
) -> Principal:
    """A ticket socket lives as long as its admin session: logout, a password change,
    deactivation or demotion ends it at the next re-validation."""
    return _admin_principal(
        admin_session_check(user_id=user_id, session_key=session_key), policy, context
    )


def frame_text(frame: dict[str, Any]) -> str:
    """A frame as the client receives it: compact JSON."""
    return json.dumps(frame, separators=(",", ":"))


class TokenAuthenticatedConsumer(AsyncWebsocketConsumer):
    """First-frame auth and session upkeep shared by the conversation and escalation sockets.

    Subclasses set `policy` (who may open this socket, as for a REST route), implement
    `authorize` (may this principal use *this* object? raises `CloseSocket`), `on_authenticated`
    (subscribe, replay) and optionally `handle_frame` for their own frame types.
    """

    socket_name = "websocket"
    policy: Policy | None = None

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
        self.context = CallContext(path="", ip=None)
        # This socket's place among its user's WS_MAX_SOCKETS_PER_USER (accounts.socket_slots):
        # the user whose slot it holds, None while it holds none.
        self.socket_id = uuid.uuid4().hex
        self._slot_user_id: int | None = None

    @property
    def path(self) -> str:
        return self.context.path

    # --- ASGI plumbing --------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale DB connections before *every* handler, a hop to its shared sync
        # thread per live event. ORM work here goes through `run_db`, which closes its own
        # connections, so live pushes stay on the event loop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"] in ("websocket.connect", "websocket.disconnect"):
            await handler(message)
            return
        # Nothing a client sends, and no event pushed to it, may end the consumer: an exception
        # escaping here would drop the socket (1006) and skip websocket_disconnect, leaving its
        # timers and group memberships behind.
        try:
            await handler(message)
        except Exception as exc:  # noqa: BLE001 - the boundary: log, answer, keep the connection
            if self.outage_met(exc):
                if message["type"] == "websocket.receive":
                    await self.send_unavailable()
                return
            logger.exception("%s: unexpected error handling %s", self.socket_name, message["type"])
            if message["type"] == "websocket.receive":
                await self.send_internal_error()

    async def connect(self) -> None:
        meta = scope_meta(self.scope)
        self.request_id = request_id_from_header(meta.get("HTTP_X_REQUEST_ID"))
        # Set in the consumer's task: log lines and security events of this connection (and
        # the tasks and threads it starts, which copy the context) carry the id.
        request_id_var.set(self.request_id)
        self.context = CallContext.from_scope(self.scope)
        await self.accept()
        self._start("auth_timeout", self._auth_timeout())

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Always cancels every task and leaves every group, whatever happened before."""
        self.closing = True
        try:
            await self._give_back_socket_slot()
            await self._cancel_tasks_and_wait()
            for group in self.groups:
                try:
                    await self.channel_layer.group_discard(group, self.channel_name)
                except Exception:  # noqa: BLE001 - leave the other groups all the same
                    logger.exception("%s: could not leave %s", self.socket_name, group)
            self.groups.clear()
            if self.principal is not None:
                logger.info(
                    "%s closed",
                    self.socket_name,
                    extra={"user_id": self.principal.user_id, "code": message.get("code")},
                )
        finally:
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
            try:
                await self._first_frame(text_data)
            except Exception as exc:
                if not self.outage_met(exc):
                    raise
                # Not authenticated (or not yet replayed): the client reconnects later and
                # resumes from its last seq, as after any close.
                raise CloseSocket(CLOSE_TRY_AGAIN_LATER, UNAVAILABLE) from None
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
            frame = json_loads(text_data)  # the API's JSON rule: depth limit included
        except MalformedRequest as exc:
            detail = exc.detail if isinstance(exc, JsonTooDeep) else "Frames must be JSON objects"
            await self.send_error(detail, status=400, code="bad_frame")
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
            principal = await self._validate_ticket(frame["ticket"])
        else:
            token = _frame_token(frame)
            if token is None:
                await self._auth_failed("auth frame without a token")
            principal = await self._validate(token)
        self._task_cancel("auth_timeout")
        context = await self.authorize(principal)
        await self._take_socket_slot(principal)
        self.principal, self.raw_token = principal, token
        self._arm_expiry(principal.token_expires_at)
        self._start("revalidate", self._revalidate_forever())
        # Revoking a session or changing the password anywhere reaches this socket within a
        # second, on whichever node holds it (accounts.socket_events).
        user_group = user_sockets_group(principal.user_id)
        await self.channel_layer.group_add(user_group, self.channel_name)
        self.groups.append(user_group)
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
        """The token, then the socket's policy (the same check as a REST route's)."""
        try:
            return await run_db(authenticate_and_authorize, token, self.policy, self.context)
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)
        except (PermissionDenied, InsufficientScope) as exc:
            raise CloseSocket(CLOSE_FORBIDDEN, exc.detail) from None

    async def _validate_ticket(self, ticket: Any) -> Principal:
        """An admin ticket, then the socket's policy (as for a token)."""
        try:
            principal, self.admin_session_key = await run_db(
                ticket_authenticate_and_authorize, ticket, self.policy, self.context
            )
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)
        except (PermissionDenied, InsufficientScope) as exc:
            raise CloseSocket(CLOSE_FORBIDDEN, exc.detail) from None
        return principal

    async def _revalidate_admin_session(self) -> None:
        principal, session_key = self.principal, self.admin_session_key
        if principal is None or session_key is None:
            return
        try:
            renewed = await run_db(
                admin_session_authorize, principal.user_id, session_key, self.policy, self.context
            )
        except NotAuthenticated as exc:
            await self._auth_failed(exc.detail)
        except (PermissionDenied, InsufficientScope) as exc:
            raise CloseSocket(CLOSE_FORBIDDEN, exc.detail) from None
        await self.authorize(renewed)
        self.principal = renewed

    async def _auth_failed(self, reason: str) -> NoReturn:
        await self.record_security_event(SecurityEvent.Kind.AUTH_FAILED, {"reason": reason})
        raise CloseSocket(CLOSE_UNAUTHENTICATED, _GENERIC_AUTH_FAILURE)

    async def authorize(self, principal: Principal) -> Any:
        """Beyond the policy: may `principal` use this socket's object? Return what
        `on_authenticated` needs, or raise `CloseSocket`. Called on the first auth frame, each
        re-auth and each re-validation."""
        return None

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

    # --- The user's socket cap (accounts.socket_slots) -------------------------------------

    async def _take_socket_slot(self, principal: Principal) -> None:
        """Hold one of the user's WS_MAX_SOCKETS_PER_USER places, deployment-wide, or refuse
        the socket: an `error` frame naming the limit, then close 4429."""
        limit = settings.WS_MAX_SOCKETS_PER_USER
        try:
            taken = await _off_loop(
                socket_slot_take, user_id=principal.user_id, socket_id=self.socket_id
            )
        except Exception:  # noqa: BLE001 - Redis unreachable: no place can be promised
            logger.exception("%s: could not take a socket slot", self.socket_name)
            raise CloseSocket(CLOSE_TRY_AGAIN_LATER, "Service temporarily unavailable") from None
        if not taken:
            await self.record_security_event(
                SecurityEvent.Kind.RATE_LIMITED,
                {"group": "websockets:user", "limit": limit},
                principal=principal,
            )
            await self.send_error(
                f"Too many open websockets: at most {limit} per user",
                status=429,
                code="too_many_sockets",
                limit=limit,
            )
            raise CloseSocket(CLOSE_TOO_MANY_SOCKETS, "Too many open websockets")
        self._slot_user_id = principal.user_id
        self._start("socket_lease", self._renew_socket_slot_forever())

    async def _renew_socket_slot_forever(self) -> None:
        """Keep the lease while the socket is open (a third of its length between renewals, so
        one missed renewal loses nothing)."""
        while not self.closing:
            await asyncio.sleep(settings.WS_SOCKET_LEASE_SECONDS / 3)
            user_id = self._slot_user_id
            if user_id is None or self.closing:
                return
            try:
                kept = await _off_loop(socket_slot_take, user_id=user_id, socket_id=self.socket_id)
            except Exception:  # noqa: BLE001 - try again at the next renewal
                logger.exception("%s: could not renew a socket slot", self.socket_name)
                continue
            if not kept:
                # The lease lapsed (the store was unreachable for a whole lease) and the user's
                # other sockets took every place meanwhile.
                await self.close_with(CLOSE_TOO_MANY_SOCKETS, "Too many open websockets")
                return

    async def _give_back_socket_slot(self) -> None:
        user_id, self._slot_user_id = self._slot_user_id, None
        if user_id is not None:
            await _off_loop(socket_slot_give_back, user_id=user_id, socket_id=self.socket_id)

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
        REVALIDATE_SECONDS (jittered, so many sockets do not re-check in lockstep). While the
        database or Redis is unavailable a re-check cannot run: the socket stays open (it
        passed the last one) and the next tick checks again."""
        while not self.closing:
            await asyncio.sleep(REVALIDATE_SECONDS * random.uniform(0.8, 1.0))  # noqa: S311
            try:
                await self.revalidate()
            except Exception as exc:
                if not self.outage_met(exc):
                    raise

    async def auth_recheck(self, event: dict[str, Any]) -> None:
        """The user's credentials changed somewhere (a session revoked, the password changed, a
        factor reset): check this socket's now rather than at the next periodic re-check."""
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
                principal = await run_db(
                    authenticate_and_authorize, raw_token, self.policy, self.context
                )
            except NotAuthenticated as exc:
                if raw_token == self.raw_token:  # not replaced by a re-auth meanwhile
                    await self._auth_failed(exc.detail)
                return
            except (PermissionDenied, InsufficientScope) as exc:
                if raw_token == self.raw_token:
                    raise CloseSocket(CLOSE_FORBIDDEN, exc.detail) from None
                return
            await self.authorize(principal)
            if raw_token == self.raw_token:
                self.principal = principal
        except CloseSocket as close:
            await self.close_with(close.code, close.reason)

    def _start(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        self._task_cancel(name)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._task_done)
        self._tasks[name] = task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        # A background task's exception would otherwise vanish with the task ("exception was
        # never retrieved") and silently stop, say, re-validation: log it.
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "%s: background task failed",
                self.socket_name,
                exc_info=task.exception(),
            )

    def _task_cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _cancel_tasks_and_wait(self) -> None:
        tasks = [t for t in self._tasks.values() if t is not asyncio.current_task()]
        for name in list(self._tasks):
            self._task_cancel(name)
        if tasks:
            await asyncio.wait(tasks, timeout=TASK_CANCEL_GRACE_SECONDS)

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
        await self.send_frame_text(frame_text(frame))

    async def send_frame_text(self, text: str) -> None:
        """A frame already encoded by `frame_text` (a group event encodes its frames once for
        every socket it reaches)."""
        if self.closing:
            return
        try:
            await self.send(text_data=text)
        except (OSError, RuntimeError):
            # The client went away mid-send (uvicorn raises ClientDisconnected, an OSError;
            # servers raise RuntimeError for a send after the close): the websocket.disconnect
            # that follows cancels the tasks, leaves the groups and stops the consumer.
            self.closing = True

    async def send_error(self, detail: str, *, status: int, code: str, **extra: Any) -> None:
        """`{"type": "error", "detail"}` plus `status` (the HTTP equivalent) and `code`; the
        connection stays open."""
        await self.send_frame(
            {"type": "error", "detail": detail, "status": status, "code": code, **extra}
        )

    def outage_met(self, exc: BaseException) -> bool:
        """True when `exc` is an unavailable database or Redis, which is then reported (once
        per outage in the log, core.outages)."""
        dependency = dependency_of(exc)
        if dependency is None:
            return False
        outage_report(dependency, exc)
        return True

    async def send_unavailable(self, **extra: Any) -> None:
        """What a REST client would get as a 503: try again in `retry_after` seconds."""
        await self.send_error(
            UNAVAILABLE,
            status=503,
            code="unavailable",
            retry_after=RETRY_AFTER_SECONDS,
            **extra,
        )

    async def send_internal_error(self, **extra: Any) -> None:
        """What a REST client would get as a 500: no detail beyond the request id to quote."""
        await self.send_error(
            "Internal server error",
            status=500,
            code="internal_error",
            request_id=self.request_id,
            **extra,
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
        # Free the user's place before the close frame leaves: by the time the client learns
        # the socket is closed, its next socket may take the place (not only at disconnect).
        await self._give_back_socket_slot()
        try:
            await self.close(code=code, reason=reason[:120])
        except (OSError, RuntimeError):
            pass  # already gone

    async def record_security_event(
        self, kind: str, detail: dict[str, Any], *, principal: Principal | None = None
    ) -> None:
        principal = principal or self.principal
        await run_db(
            security_event_record,
            kind=kind,
            user=principal.user if principal else None,
            context=self.context,
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
        frame = json_loads(text_data)
    except MalformedRequest:
        return None
    return frame if isinstance(frame, dict) else None


async def websocket_route_not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Catch-all websocket route: refuse the handshake (HTTP 403) for an unknown path instead of
    Channels' "No route found" exception, which reaches the server log as a traceback and the
    client as a 500."""
    if scope["type"] != "websocket":
        return
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
