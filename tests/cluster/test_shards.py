"""The channel layer sharded over several Redis servers (CHANNEL_REDIS_URLS): settings build
channels-redis's host list from it, pushes from request threads go to the shard channels-redis
itself picks for the group (so sockets subscribed through the layer on any host get them), and
/ready names a lost shard by address, never with its password. Two redis-servers of the test's
own (deploy/services.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from core import outages
from deploy.services import RedisServer, free_port, redis_available, redis_server
from messaging import realtime
from messaging.realtime import messages_created_event

pytestmark = pytest.mark.skipif(not redis_available(), reason="needs redis-server")

PREFIX = "parley-shard-test"
BASE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def shards() -> Iterator[list[RedisServer]]:
    with redis_server() as first, redis_server() as second:
        yield [first, second]


def _layer(urls: list[str]) -> Any:
    from channels_redis.pubsub import RedisPubSubChannelLayer

    hosts = [{"address": url, "max_connections": 100, "socket_timeout": 30} for url in urls]
    return RedisPubSubChannelLayer(hosts=hosts, prefix=PREFIX)


def _group_channel(conversation_id: int) -> str:
    """The pub/sub channel of a conversation's group on `_layer`'s layers."""
    return f"{PREFIX}__group__conversation.{conversation_id}"


def _settings_of(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CHANNEL_REDIS_URLS", "REDIS_URL")}
    return subprocess.run(  # noqa: S603 - our interpreter, a fixed expression
        [sys.executable, "-c", f"import config.settings as s; print({expression})"],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_channel_redis_urls_are_the_layers_shards_and_the_cache_stays_on_redis_url() -> None:
    done = _settings_of(
        {
            "REDIS_URL": "redis://10.0.0.1:6379/0",
            "CHANNEL_REDIS_URLS": "redis://10.0.0.1:6379/0, redis://10.0.0.2:6380/0",
        },
        "[h['address'] for h in s.CHANNEL_LAYERS['default']['CONFIG']['hosts']],"
        " s.CACHES['default']['LOCATION']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "['redis://10.0.0.1:6379/0', 'redis://10.0.0.2:6380/0'] redis://10.0.0.1:6379/0"
    )


def test_without_channel_redis_urls_the_layer_is_redis_url_alone() -> None:
    done = _settings_of(
        {"REDIS_URL": "redis://10.0.0.1:6379/3"},
        "[h['address'] for h in s.CHANNEL_LAYERS['default']['CONFIG']['hosts']]",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['redis://10.0.0.1:6379/3']"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REDIS_URL": "redis://10.0.0.1:6379/0", "CHANNEL_REDIS_URLS": "http://10.0.0.2/"},
            "CHANNEL_REDIS_URLS: each entry must be a redis://, rediss:// or unix:// URL",
        ),
        (
            {"CHANNEL_REDIS_URLS": "redis://10.0.0.2:6379/0"},
            "CHANNEL_REDIS_URLS needs REDIS_URL (the cache and the rate limits) set too",
        ),
    ],
)
def test_a_bad_channel_redis_urls_stops_start_up_with_one_line(
    env: dict[str, str], message: str
) -> None:
    done = _settings_of(env, "1")
    assert done.returncode == 1
    assert done.stderr.strip() == f"Parley configuration error: {message}"


def test_thread_pushes_go_to_the_shard_the_layer_subscribes_on(
    shards: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _layer([shard.url(0) for shard in shards])
    monkeypatch.setattr(realtime, "_publishers", {})
    publisher = realtime._pipeline_publisher(layer, sync=True)
    assert publisher is not None
    conversations = list(range(4_000_001, 4_000_013))
    on_shard = {c: publisher.shard_of(_group_channel(c)) for c in conversations}

    async def layers_choice() -> dict[int, int]:
        inner = layer._get_layer()  # the layer of this event loop, holding the shards
        return {c: inner._shards.index(inner._get_shard(_group_channel(c))) for c in conversations}

    # channels_redis's own choice, and both shards in use: a wrong hash would lose pushes.
    assert on_shard == async_to_sync(layers_choice)()
    assert set(on_shard.values()) == {0, 1}

    async def received() -> dict[int, list[int]]:
        channel = await layer.new_channel()
        for c in conversations:
            await layer.group_add(f"conversation.{c}", channel)
        events = [
            messages_created_event(c, [{"seq": seq, "conversation_id": c}])
            for seq in (1, 2, 3)
            for c in conversations
        ]
        # One call from a request thread: a pipeline per shard, in the caller's order.
        await asyncio.to_thread(lambda: publisher.pipeline(layer, [events]).execute())
        seen: dict[int, list[int]] = {c: [] for c in conversations}
        for _ in range(len(events)):
            event = await asyncio.wait_for(layer.receive(channel), 5)
            message = event["messages"][0]
            conversation = json.loads(message["frame"])["message"]["conversation_id"]
            seen[conversation].append(message["seq"])
        await layer.flush()
        return seen

    assert async_to_sync(received)() == {c: [1, 2, 3] for c in conversations}


def test_a_lost_shard_costs_only_its_own_pushes(
    shards: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    layer = _layer([shards[0].url(0), dead])
    monkeypatch.setattr(realtime, "_publishers", {})
    publisher = realtime._pipeline_publisher(layer, sync=True)
    assert publisher is not None
    candidates = range(5_000_000, 5_000_100)
    alive = next(c for c in candidates if publisher.shard_of(_group_channel(c)) == 0)
    lost = next(c for c in candidates if publisher.shard_of(_group_channel(c)) == 1)

    # A socket on the shard that stays: subscribed through a layer of that shard alone (the
    # group's channel is the same there), as the dead shard cannot take subscriptions.
    listening = _layer([shards[0].url(0)])

    async def received() -> tuple[list[int], str]:
        channel = await listening.new_channel()
        await listening.group_add(f"conversation.{alive}", channel)
        events = [
            messages_created_event(lost, [{"seq": 1}]),
            messages_created_event(alive, [{"seq": 7}]),
        ]
        try:
            await asyncio.to_thread(lambda: publisher.pipeline(layer, [events]).execute())
        except Exception as exc:  # noqa: BLE001 - the lost shard's error, after the rest went
            error = type(exc).__name__
        else:
            error = ""
        event = await asyncio.wait_for(listening.receive(channel), 5)
        await listening.flush()
        return [m["seq"] for m in event["messages"]], error

    assert async_to_sync(received)() == ([7], "ConnectionError")


@pytest.mark.django_db
def test_ready_names_a_lost_shard_without_its_password(
    shards: list[RedisServer], settings: Any
) -> None:
    outages.outages_reset()
    port = free_port()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": shards[0].url(0)},
                    {"address": f"redis://:hunter2secret@127.0.0.1:{port}/0"},
                ]
            },
        }
    }
    try:
        response = Client().get("/ready")
    finally:
        outages.outages_reset()
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == (
        "Not ready: channel_layer unavailable "
        f"(channel layer shard 2 (redis://127.0.0.1:{port}/0) unreachable)"
    )
    assert body["checks"]["channel_layer"] == "unavailable"
    assert "hunter2secret" not in response.content.decode()


@pytest.mark.django_db
def test_ready_is_ok_when_every_shard_answers(shards: list[RedisServer], settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": shard.url(0)} for shard in shards]},
        }
    }
    response = Client().get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["channel_layer"] == "ok"
