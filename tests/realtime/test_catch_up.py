"""After the channel layer's Redis comes back, open conversation sockets catch up from the
database on what was committed but never pushed to them (messaging.realtime), and a
traceback-per-second from channels-redis' receive loop becomes one outage (core.logging).
tests/faults/test_restarts.py restarts a real Redis under a socket; these pin the pieces."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.models import User
from core import outages
from core.logging import ChannelLayerOutageFilter
from messaging import realtime, services
from tests.factories import ConversationFactory
from tests.realtime.conftest import (
    access_token_for,
    collect_until,
    connect_authenticated,
    still_answers,
)

db = sync_to_async


@db
def _send_unpushed(customer: User, conversation_id: int, text: str, monkeypatch: Any) -> Any:
    """A message written while the layer was away: committed, its push lost."""
    monkeypatch.setattr(realtime, "publish", lambda events: None)
    try:
        return services.message_send(customer=customer, conversation_id=conversation_id, text=text)
    finally:
        monkeypatch.undo()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_socket_catches_up_on_what_the_outage_kept_from_it(
    customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = await db(ConversationFactory)(customer=customer)
    token = await db(access_token_for)(customer)
    communicator, _ = await connect_authenticated(f"/ws/conversations/{conversation.pk}/", token)
    try:
        # Frames are handled in order: the pong says the auth frame's replay is over, so the
        # message below is not in it.
        await still_answers(communicator)
        result = await _send_unpushed(customer, conversation.pk, "hello?", monkeypatch)
        assert await communicator.receive_nothing(timeout=0.3)  # the push was lost

        # The layer's outage ends in this process: its hook schedules the catch-up.
        outages.outage_report(outages.CHANNEL_LAYER, RedisConnectionError("refused"))
        outages.outage_recovered(outages.CHANNEL_LAYER)
        frames = await collect_until(communicator, lambda f: len(f) == 2)
        assert [f["message"]["seq"] for f in frames] == [
            result.customer_message_seq,
            result.reply_seq,
        ]
        assert frames[0]["message"]["content"] == "hello?"

        # Nothing twice: a second catch-up finds nothing new to send.
        assert await realtime.sockets_catch_up() == 1
        assert await communicator.receive_nothing(timeout=0.3)
    finally:
        await communicator.disconnect()


def test_the_catch_up_is_the_channel_layers_recovery_hook() -> None:
    hooks = outages._recovery_hooks[outages.CHANNEL_LAYER]
    assert hooks == [realtime.sockets_catch_up_schedule]


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "channels_redis.pubsub", logging.ERROR, __file__, 1, "Unexpected exception", (), info
    )


def test_channels_redis_losing_its_redis_is_one_outage_not_a_traceback_a_second() -> None:
    keep = ChannelLayerOutageFilter()
    assert keep.filter(_record(RedisConnectionError("Error 111 connecting"))) is False
    assert keep.filter(_record(RedisConnectionError("Error 111 connecting"))) is False
    outage = outages.outages_current()[outages.CHANNEL_LAYER]
    assert outage.failures == 2
    # Anything else is a bug: logged as it was.
    assert keep.filter(_record(ValueError("a bug"))) is True
    assert keep.filter(logging.LogRecord("x", logging.ERROR, __file__, 1, "m", (), None)) is True
