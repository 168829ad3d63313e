"""Presence and auto-assignment across processes: an operator's inbox socket on one server
makes them online for every server of the deployment (Redis), so a hand-off handled by the
other server is assigned to them at once; closing the socket takes them offline everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.realtime import servers
from tests.realtime.servers import Server

pytestmark = servers.cross_process("presence is shared through Redis")


@pytest.fixture
def two_servers() -> Iterator[tuple[Server, ...]]:
    with servers.running(2, ASSIGNMENT_MODE="auto") as started:
        yield started


async def _operators(server: Server, token: str) -> list[tuple[str, str]]:
    status, body = await asyncio.to_thread(
        servers.api, server, "GET", "/api/v1/operators", None, token
    )
    assert status == 200, body
    return [(item["display_name"], item["status"]) for item in body["items"]]


async def test_presence_and_assignment_hold_across_servers(
    two_servers: tuple[Server, ...],
) -> None:
    server_a, server_b = two_servers
    operator = await asyncio.to_thread(servers.sign_in, server_a, "olivia")
    customer, me = await asyncio.to_thread(servers.signed_in, server_b, "alice")
    assert await _operators(server_b, operator) == [("Olivia", "offline")]

    socket = await servers.open_socket(server_a, "/ws/escalations/", operator)
    try:
        assert await _operators(server_b, operator) == [("Olivia", "online")]

        body = await asyncio.to_thread(
            servers.post_message, server_b, customer, me, "I want a human please"
        )
        assert body["status"] == "escalated"
        # Assigned at once by server B to the operator connected to server A, and pushed there.
        frames = await servers.frames_until(
            socket, lambda f: any(x.get("event") == "assigned" for x in f), within=5
        )
        assigned = next(f for f in frames if f.get("event") == "assigned")
        assert assigned["escalation"]["conversation_id"] == body["conversation_id"]
        status, listed = await asyncio.to_thread(
            servers.api, server_b, "GET", "/api/v1/operators", None, operator
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
