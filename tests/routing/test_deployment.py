"""Presence and auto-assignment across processes: an operator's inbox socket on one server
makes them online for every server of the deployment (Redis), so a hand-off handled by the
other server is assigned to them at once; closing the socket takes them offline everywhere."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.realtime.servers import Deployment, Server, api, deployment, sign_in

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL"),
        reason="needs REDIS_URL: presence is shared through Redis (CI's second pass sets it)",
    ),
]


@pytest.fixture
def two_servers() -> Iterator[tuple[Deployment, Server, Server]]:
    with deployment(ASSIGNMENT_MODE="auto") as shared:
        first, second = shared.start_server(), shared.start_server()
        yield shared, first, second
        for server in (first, second):
            assert server.process.poll() is None, server.log_tail()


async def _operators(server: Server, token: str) -> list[tuple[str, str]]:
    status, body = await asyncio.to_thread(api, server, "GET", "/api/v1/operators", None, token)
    assert status == 200, body
    return [(item["display_name"], item["status"]) for item in body["items"]]


async def test_presence_and_assignment_hold_across_servers(
    two_servers: tuple[Deployment, Server, Server],
) -> None:
    _, server_a, server_b = two_servers
    operator = await asyncio.to_thread(sign_in, server_a, "olivia")
    customer = await asyncio.to_thread(sign_in, server_b, "alice")
    assert await _operators(server_b, operator) == [("Olivia", "offline")]

    socket = await websockets.connect(
        f"{server_a.ws}/ws/escalations/",
        origin=server_a.http,
        open_timeout=10,  # type: ignore[arg-type]
    )
    try:
        await socket.send(json.dumps({"type": "auth", "token": operator}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "auth.ok"
        assert await _operators(server_b, operator) == [("Olivia", "online")]

        _, me = await asyncio.to_thread(api, server_b, "GET", "/api/v1/auth/me", None, customer)
        status, body = await asyncio.to_thread(
            api,
            server_b,
            "POST",
            "/api/v1/messages/process",
            {"message": "I want a human please", "customer_id": me["id"], "conversation_id": None},
            customer,
        )
        assert (status, body["status"]) == (200, "escalated")
        # Assigned at once by server B to the operator connected to server A, and pushed there.
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while not any(f.get("event") == "assigned" for f in frames):
                frames.append(json.loads(await socket.recv()))
        assigned = next(f for f in frames if f.get("event") == "assigned")
        assert assigned["escalation"]["conversation_id"] == body["conversation_id"]
        status, listed = await asyncio.to_thread(
            api, server_b, "GET", "/api/v1/operators", None, operator
        )
        assert listed["items"][0]["open_assigned"] == 1
    finally:
        await socket.close()
    # Closing the socket releases the lease: offline for server B too.
    for _ in range(50):
        if await _operators(server_b, operator) == [("Olivia", "offline")]:
            break
        await asyncio.sleep(0.1)
    assert await _operators(server_b, operator) == [("Olivia", "offline")]
