"""On the Redis channel layer `publish` hands events to one sender task and returns without
waiting for Redis: pushes must still arrive in hand-off order, and `publish_flush` (run at
exit) must wait until they were sent."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from messaging.realtime import message_created_event, publish, publish_flush

pytestmark = pytest.mark.skipif(
    isinstance(get_channel_layer(), InMemoryChannelLayer),
    reason="the hand-off sender serves the Redis channel layer",
)


def test_pushes_arrive_in_hand_off_order_after_flush() -> None:
    conversation_id = 987_654_321
    group = f"conversation.{conversation_id}"

    def hand_off() -> None:  # as a request thread does: no waiting for Redis
        for seq in range(1, 31):
            publish([message_created_event(conversation_id, {"seq": seq})])
        publish_flush()

    async def scenario() -> list[int]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await asyncio.to_thread(hand_off)
            return [
                (await asyncio.wait_for(layer.receive(channel), 5))["message"]["seq"]
                for _ in range(30)
            ]
        finally:
            await layer.group_discard(group, channel)

    assert async_to_sync(scenario)() == list(range(1, 31))


def test_hand_offs_waiting_together_share_one_pipeline(monkeypatch) -> None:
    from messaging import realtime

    pipelines: list[int] = []
    real_pipeline = realtime._PubSubPublisher.pipeline

    def counting(self, layer, hand_offs):
        pipelines.append(sum(len(events) for events in hand_offs))
        return real_pipeline(self, layer, hand_offs)

    monkeypatch.setattr(realtime._PubSubPublisher, "pipeline", counting)
    conversation_id = 987_654_322
    group = f"conversation.{conversation_id}"

    async def scenario() -> list[int]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            batch = [
                (layer, [message_created_event(conversation_id, {"seq": seq})])
                for seq in range(1, 6)
            ]
            await asyncio.to_thread(realtime.run_in_background, realtime._send_batch(batch))
            return [
                (await asyncio.wait_for(layer.receive(channel), 5))["message"]["seq"]
                for _ in range(5)
            ]
        finally:
            await layer.group_discard(group, channel)

    assert async_to_sync(scenario)() == [1, 2, 3, 4, 5]
    assert pipelines == [5]  # five hand-offs, one round trip


def test_only_the_single_host_pubsub_layer_is_pipelined() -> None:
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from messaging.realtime import _pipeline_publisher

    address = {"address": "redis://127.0.0.1:6379/0"}
    assert _pipeline_publisher(get_channel_layer()) is not None
    assert _pipeline_publisher(InMemoryChannelLayer()) is None
    assert _pipeline_publisher(RedisChannelLayer(hosts=[address])) is None
    assert _pipeline_publisher(RedisPubSubChannelLayer(hosts=[address, address])) is None
