"""Session revocation reaches a socket held by another server process within a second, through
the Redis channel layer (SPEC §4 "Accounts, factors and sessions"; §1 "Beyond one machine").

Two uvicorn processes share one database and one Redis: the socket is held by server B, the
revocation (one session; a password change) is made on server A. Skipped on the embedded
defaults, where the in-memory channel layer cannot reach another process by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import websockets

from tests.realtime.servers import (
    PASSWORD,
    Server,
    api,
    cross_process,
    customer_id,
    open_socket,
    post_message,
    running,
)

pytestmark = cross_process("another process's socket is reached through the Redis channel layer")

WITHIN_SECONDS = 1.0


@pytest.fixture
def two_servers() -> Iterator[tuple[Server, ...]]:
    with running(2) as servers:
        yield servers


def _sign_in(server: Server, user_agent: str) -> dict[str, Any]:
    status, body = api(
        server,
        "POST",
        "/api/v1/auth/token",
        {"username": "alice", "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert status == 200, body
    return dict(body)


async def _socket(server: Server, token: str) -> Any:
    # The conversation socket of a conversation alice starts on the same server.
    me = await asyncio.to_thread(customer_id, server, token)
    body = await asyncio.to_thread(post_message, server, token, me, "Hello")
    return await open_socket(server, f"/ws/conversations/{body['conversation_id']}/", token)


async def _change_then_close(
    socket: Any, change: Callable[[], tuple[int, Any]]
) -> tuple[int, int, float]:
    """Make the change (an API call on the other server) while watching `socket`: the change's
    status, the socket's close code, and how long after the server answered the change the
    socket was closed. Timed from the answer, not from the request: the request itself hashes
    passwords (Argon2), and the contract's second starts when the revocation is made; a socket
    closed before the answer arrived counts as 0."""

    async def drain() -> None:
        async with asyncio.timeout(30):
            while True:
                await socket.recv()  # replayed history frames, then the close

    async def closed_at() -> tuple[int, float]:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await drain()
        received = closed.value.rcvd
        assert received is not None
        return received.code, time.monotonic()

    watcher = asyncio.create_task(closed_at())
    status, _ = await asyncio.to_thread(change)
    answered = time.monotonic()
    code, closed = await watcher
    after = max(0.0, closed - answered)
    print(f"change answered on A → socket closed on B: {after * 1000:.0f} ms")
    return status, code, after


async def _ping_pong(socket: Any) -> None:
    await socket.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(5):
        while json.loads(await socket.recv())["type"] != "pong":
            pass


@contextlib.asynccontextmanager
async def _two_sessions(
    server_a: Server, server_b: Server, agents: tuple[str, str]
) -> AsyncIterator[list[tuple[dict[str, Any], Any]]]:
    """alice signed in twice on A (one session per user agent), each session's tokens with a
    conversation socket of its own held by B."""
    sessions = [await asyncio.to_thread(_sign_in, server_a, agent) for agent in agents]
    sockets: list[Any] = []
    try:
        for tokens in sessions:
            sockets.append(await _socket(server_b, tokens["access_token"]))
        yield list(zip(sessions, sockets, strict=True))
    finally:
        for socket in sockets:
            await socket.close()


async def _closes_only(
    revoked: Any, kept: Any, change: Callable[[], tuple[int, Any]], what: str
) -> None:
    """The change (answered 204) closes `revoked` with 4401 within the second; `kept` still
    answers."""
    status, code, after = await _change_then_close(revoked, change)
    assert (status, code) == (204, 4401)
    assert after < WITHIN_SECONDS, f"closed {after:.2f}s after {what}"
    await _ping_pong(kept)


async def test_revoking_a_session_on_one_process_closes_its_socket_on_another(
    two_servers: tuple[Server, ...],
) -> None:
    server_a, server_b = two_servers
    agents = ("Phone/1.0", "Laptop/2.0")
    async with _two_sessions(server_a, server_b, agents) as [(_, phone), (laptop, laptop_socket)]:
        _, sessions = await asyncio.to_thread(
            api, server_a, "GET", "/api/v1/auth/sessions", None, laptop["access_token"]
        )
        (phone_session,) = [s for s in sessions["items"] if s["user_agent"] == "Phone/1.0"]
        revoke = f"/api/v1/auth/sessions/{phone_session['id']}"
        await _closes_only(
            phone,
            laptop_socket,
            lambda: api(server_a, "DELETE", revoke, None, laptop["access_token"]),
            "the revocation",
        )


async def test_a_password_change_on_one_process_closes_other_sessions_sockets_on_another(
    two_servers: tuple[Server, ...],
) -> None:
    server_a, server_b = two_servers
    async with _two_sessions(server_a, server_b, ("Other/1.0", "Mine/1.0")) as [
        (_, other_socket),
        (mine, my_socket),
    ]:
        change = {"current_password": PASSWORD, "new_password": "a-new-passphrase-for-alice-2026"}
        await _closes_only(
            other_socket,
            my_socket,
            lambda: api(server_a, "POST", "/api/v1/auth/password", change, mine["access_token"]),
            "the password change",
        )
