"""On the Redis channel layer a sync caller (a request thread) publishes its events itself, one
pipelined round trip per call, in its own order, bounded by REDIS_SOCKET_TIMEOUT; a caller on an
event loop hands them to one sender task instead, which keeps hand-off order, and
`publish_flush` (run at exit) waits until those were sent."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from core import outages
from messaging import realtime
from messaging.realtime import messages_created_event, publish, publish_flush

pytestmark = pytest.mark.skipif(
    isinstance(get_channel_layer(), InMemoryChannelLayer),
    reason="the hand-off sender serves the Redis channel layer",
)


async def _received(group: str, count: int, send: Any) -> list[int]:
    """Subscribe to `group`, run `send` (a coroutine function), read `count` messages' seqs."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        await send()
        seqs: list[int] = []
        while len(seqs) < count:
            event = await asyncio.wait_for(layer.receive(channel), 5)
            seqs.extend(message["seq"] for message in event["messages"])
        return seqs
    finally:
        await layer.group_discard(group, channel)


def _pipelines_counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """(sync client?, events) for every pipeline a publisher builds."""
    pipelines: list[tuple[bool, int]] = []
    real_pipeline = realtime._PubSubPublisher.pipeline

    def counting(self: Any, layer: Any, hand_offs: list[Any]) -> Any:
        sync = not type(self.redis).__module__.startswith("redis.asyncio")
        pipelines.append((sync, sum(len(events) for events in hand_offs)))
        return real_pipeline(self, layer, hand_offs)

    monkeypatch.setattr(realtime._PubSubPublisher, "pipeline", counting)
    return pipelines


def test_a_threads_pushes_arrive_in_its_order_one_round_trip_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipelines = _pipelines_counted(monkeypatch)
    conversation_id = 987_654_321

    def request_thread() -> None:
        for seq in range(1, 31, 2):
            publish(
                [
                    messages_created_event(conversation_id, [{"seq": seq}]),
                    messages_created_event(conversation_id, [{"seq": seq + 1}]),
                ]
            )

    async def send() -> None:
        await asyncio.to_thread(request_thread)

    group = f"conversation.{conversation_id}"
    assert async_to_sync(_received)(group, 30, send) == list(range(1, 31))
    # Sent by the thread itself (no hand-off, nothing to flush): one pipeline per call.
    assert pipelines == [(True, 2)] * 15


def test_on_an_event_loop_pushes_are_handed_off_in_order_and_flushed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipelines = _pipelines_counted(monkeypatch)
    conversation_id = 987_654_323

    async def send() -> None:
        for seq in range(1, 31):
            publish([messages_created_event(conversation_id, [{"seq": seq}])])  # must not block
        await asyncio.to_thread(publish_flush)

    group = f"conversation.{conversation_id}"
    assert async_to_sync(_received)(group, 30, send) == list(range(1, 31))
    # All through the background loop's client; hand-offs waiting together share a pipeline.
    assert [sync for sync, _ in pipelines] == [False] * len(pipelines)
    assert sum(events for _, events in pipelines) == 30


def test_a_threads_push_waits_on_redis_no_longer_than_its_timeout() -> None:
    publisher = realtime._pipeline_publisher(get_channel_layer(), sync=True)
    assert publisher is not None
    options = publisher.redis.connection_pool.connection_kwargs
    # Not the layer's 30 s socket timeout (meant for its subscribers' blocking reads).
    assert options["socket_timeout"] == settings.REDIS_SOCKET_TIMEOUT
    assert options["socket_connect_timeout"] == settings.REDIS_SOCKET_TIMEOUT


def test_a_failed_push_from_a_thread_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from channels_redis.pubsub import RedisPubSubChannelLayer

    # Loopback port 1: nothing listens, the connection is refused at once.
    refused = RedisPubSubChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    # Publishers are cached by the layer's id(): a later layer must not inherit this one's.
    monkeypatch.setattr(realtime, "_publishers", dict(realtime._publishers))
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: refused)
    # The watcher's check of the configured layer must not end the outage under the test.
    monkeypatch.setitem(outages.CHECKS, "channel_layer", _still_down)
    with caplog.at_level(logging.INFO):
        publish([messages_created_event(987_654_324, [{"seq": 1}])])
        publish([messages_created_event(987_654_324, [{"seq": 2}])])

    # An unavailable Redis is an outage of the channel layer: one line for both pushes.
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "parley.outages",
            "ERROR",
            "channel_layer unavailable (ConnectionError): requests get 503, waiting for it to "
            "return",
        )
    ]
    assert outages.outages_current()["channel_layer"].failures == 2


def _still_down() -> None:
    raise ConnectionError("still down")


def test_a_push_failing_for_another_reason_is_logged_with_its_cause(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def pipeline(self, *_: object) -> None:
            raise ValueError("a bug, not an outage")

    monkeypatch.setattr(realtime, "_pipeline_publisher", lambda *_, **__: Broken())
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: object())
    with caplog.at_level(logging.ERROR, logger="parley.realtime"):
        publish([messages_created_event(987_654_325, [{"seq": 1}])])

    assert "websocket push failed for 1 event(s)" in caplog.text
    assert "ValueError: a bug, not an outage" in caplog.text
    assert outages.outages_current() == {}


def test_hand_offs_waiting_together_share_one_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    pipelines = _pipelines_counted(monkeypatch)
    conversation_id = 987_654_322

    async def send() -> None:
        layer = get_channel_layer()
        batch = [
            (layer, [messages_created_event(conversation_id, [{"seq": seq}])])
            for seq in range(1, 6)
        ]
        await asyncio.to_thread(realtime.run_in_background, realtime._send_batch(batch))

    group = f"conversation.{conversation_id}"
    assert async_to_sync(_received)(group, 5, send) == [1, 2, 3, 4, 5]
    assert pipelines == [(False, 5)]  # five hand-offs, one round trip


def test_only_the_pubsub_layer_is_pipelined_one_client_per_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    monkeypatch.setattr(realtime, "_publishers", dict(realtime._publishers))

    from messaging.realtime import _pipeline_publisher

    address = {"address": "redis://127.0.0.1:6379/0"}
    # Publishers are cached by id(layer): every layer is made once and stays alive to the end,
    # so none reuses a freed one's id (and its cached answer).
    in_memory = InMemoryChannelLayer()
    core = RedisChannelLayer(hosts=[address])
    # Sharded (CHANNEL_REDIS_URLS): one client per shard, chosen as the layer chooses
    # (tests/cluster/test_shards.py); hosts given other than as addresses: the layer's own.
    two_hosts = RedisPubSubChannelLayer(hosts=[address, address])
    as_pairs = RedisPubSubChannelLayer(hosts=[("127.0.0.1", 6379)])
    for sync in (False, True):
        assert _pipeline_publisher(get_channel_layer(), sync=sync) is not None
        assert _pipeline_publisher(in_memory, sync=sync) is None
        assert _pipeline_publisher(core, sync=sync) is None
        publisher = _pipeline_publisher(two_hosts, sync=sync)
        assert publisher is not None
        assert len(publisher.shards) == 2
        assert _pipeline_publisher(as_pairs, sync=sync) is None
