"""Erasure closes the customer's open conversation sockets (through the real ASGI app)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers

from accounts.data_rights import user_erase
from accounts.models import User
from messaging.services import message_send
from tests.realtime.conftest import access_token_for, connect_authenticated, expect_close

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_in_memory_layer() -> Any:
    # The in-memory layer's queues belong to one event loop; each async test has its own.
    if isinstance(channel_layers.backends.get("default"), InMemoryChannelLayer):
        channel_layers.backends.clear()
    yield
    if isinstance(channel_layers.backends.get("default"), InMemoryChannelLayer):
        channel_layers.backends.clear()


async def test_erasure_closes_the_customers_sockets(
    customer: User, other_customer: User, operator: User, superuser: User
) -> None:
    send = sync_to_async(message_send)
    token = sync_to_async(access_token_for)
    mine = (await send(customer=customer, conversation_id=None, text="hello")).conversation_id
    theirs = (await send(customer=other_customer, conversation_id=None, text="hi")).conversation_id
    own_socket, _ = await connect_authenticated(f"/ws/conversations/{mine}/", await token(customer))
    staff_socket, _ = await connect_authenticated(
        f"/ws/conversations/{mine}/", await token(operator)
    )
    other_socket, _ = await connect_authenticated(
        f"/ws/conversations/{theirs}/", await token(other_customer)
    )
    try:
        await sync_to_async(user_erase)(user=customer, actor=superuser)
        assert await expect_close(own_socket) == 4404
        assert await expect_close(staff_socket) == 4404
        assert await other_socket.receive_nothing(timeout=0.5)
    finally:
        for communicator in (own_socket, staff_socket, other_socket):
            await communicator.disconnect()
