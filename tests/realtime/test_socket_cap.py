"""WS_MAX_SOCKETS_PER_USER: the sockets one user holds across the deployment.

Conversation and escalation sockets count together; the next one gets an `error` frame naming
the limit and close 4429; a closed socket frees its place at once; places held elsewhere in the
deployment (another process: slots taken straight in the shared store) count too, and a place
whose socket's process died lapses with its lease. On the embedded defaults the store is this
process's; with REDIS_URL (CI's second pass) it is Redis, shared by every process — the
cross-process run with real servers and a SIGKILL is in test_redis_servers.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import SecurityEvent, User
from accounts.socket_slots import socket_slots
from tests.factories import ConversationFactory, MessageFactory
from tests.realtime.conftest import (
    access_token_for,
    answer,
    connect_authenticated,
    make_communicator,
    still_answers,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

LIMIT = 3
REFUSAL = {
    "type": "error",
    "detail": f"Too many open websockets: at most {LIMIT} per user",
    "status": 429,
    "code": "too_many_sockets",
    "limit": LIMIT,
}


@pytest.fixture
def cap(settings: Any) -> Any:
    settings.WS_MAX_SOCKETS_PER_USER = LIMIT
    return settings


@sync_to_async
def _conversation(customer: User) -> int:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", content="hello")
    return int(conversation.pk)


async def _refused(path: str, token: str) -> None:
    """The socket is refused: the error frame naming the limit, then 4429."""
    communicator = make_communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    assert await answer(communicator, {"type": "auth", "token": token}) == REFUSAL
    output = await communicator.receive_output(5)
    assert (output["type"], output["code"]) == ("websocket.close", 4429)
    await communicator.disconnect()


def _held(user: User) -> int:
    return socket_slots().held(user_id=user.pk)


async def test_conversation_and_escalation_sockets_count_together(
    cap: Any, customer: User, operator: User, other_customer: User
) -> None:
    conversation_id = await _conversation(customer)
    token = await sync_to_async(access_token_for)(operator)
    path = f"/ws/conversations/{conversation_id}/"
    opened: list[WebsocketCommunicator] = []
    try:
        for socket_path in (path, "/ws/escalations/", path):
            opened.append((await connect_authenticated(socket_path, token))[0])
        assert await sync_to_async(_held)(operator) == LIMIT

        await _refused("/ws/escalations/", token)
        await _refused(path, token)
        assert await sync_to_async(_held)(operator) == LIMIT
        refusals = await sync_to_async(
            lambda: list(
                SecurityEvent.objects.filter(kind="rate_limited", user=operator).values_list(
                    "detail", flat=True
                )
            )
        )()
        assert refusals == [{"group": "websockets:user", "limit": LIMIT}] * 2

        # The first three are untouched: they still answer.
        for communicator in opened:
            await still_answers(communicator)
        # Another user has places of their own.
        customer_token = await sync_to_async(access_token_for)(customer)
        theirs, _ = await connect_authenticated(path, customer_token)
        await theirs.disconnect()
    finally:
        for communicator in opened:
            await communicator.disconnect()
    assert await sync_to_async(_held)(operator) == 0


async def test_a_closed_socket_frees_its_place_at_once(cap: Any, customer: User) -> None:
    conversation_id = await _conversation(customer)
    token = await sync_to_async(access_token_for)(customer)
    path = f"/ws/conversations/{conversation_id}/"
    opened = [(await connect_authenticated(path, token))[0] for _ in range(LIMIT)]
    try:
        await _refused(path, token)
        await opened.pop().disconnect()  # the client goes away
        replacement, _ = await connect_authenticated(path, token)
        opened.append(replacement)

        # A socket the server closes (its token revoked here) frees its place too.
        closing = opened.pop(0)
        await closing.send_json_to({"type": "auth", "token": "not-a-token"})
        output = await closing.receive_output(5)
        assert (output["type"], output["code"]) == ("websocket.close", 4401)
        assert await sync_to_async(_held)(customer) == LIMIT - 1
        await closing.disconnect()
        opened.append((await connect_authenticated(path, token))[0])
    finally:
        for communicator in opened:
            await communicator.disconnect()
    assert await sync_to_async(_held)(customer) == 0


async def test_places_held_elsewhere_in_the_deployment_count(cap: Any, customer: User) -> None:
    """Slots taken straight in the shared store stand for sockets of another process (or host,
    with Redis): together with this process's they make the limit."""
    conversation_id = await _conversation(customer)
    token = await sync_to_async(access_token_for)(customer)
    path = f"/ws/conversations/{conversation_id}/"
    slots = socket_slots()
    for node in range(LIMIT - 1):
        assert slots.take(
            user_id=customer.pk, socket_id=f"node-b-{node}", limit=LIMIT, lease_seconds=60
        )
    here, _ = await connect_authenticated(path, token)
    try:
        await _refused(path, token)
        slots.give_back(user_id=customer.pk, socket_id="node-b-0")  # closed over there
        there, _ = await connect_authenticated(path, token)
        await there.disconnect()
    finally:
        await here.disconnect()


async def test_a_place_whose_process_died_lapses_with_its_lease(cap: Any, customer: User) -> None:
    """A socket whose process was killed never gives its place back and never renews it: the
    place is free again once the lease ends."""
    cap.WS_SOCKET_LEASE_SECONDS = 0.6
    conversation_id = await _conversation(customer)
    token = await sync_to_async(access_token_for)(customer)
    path = f"/ws/conversations/{conversation_id}/"
    slots = socket_slots()
    for node in range(LIMIT):
        assert slots.take(
            user_id=customer.pk, socket_id=f"dead-{node}", limit=LIMIT, lease_seconds=0.6
        )
    await _refused(path, token)
    await asyncio.sleep(0.8)
    communicator, _ = await connect_authenticated(path, token)
    await communicator.disconnect()


async def test_an_open_socket_keeps_its_place_past_its_lease(cap: Any, customer: User) -> None:
    cap.WS_SOCKET_LEASE_SECONDS = 0.6  # renewed every 0.2 s while open
    conversation_id = await _conversation(customer)
    token = await sync_to_async(access_token_for)(customer)
    path = f"/ws/conversations/{conversation_id}/"
    opened = [(await connect_authenticated(path, token))[0] for _ in range(LIMIT)]
    try:
        await asyncio.sleep(1.5)  # two and a half leases
        assert await sync_to_async(_held)(customer) == LIMIT
        await _refused(path, token)
    finally:
        for communicator in opened:
            await communicator.disconnect()
