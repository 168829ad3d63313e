"""Websocket events: their shapes, their groups, and publishing them after a commit.

Services call `publish_on_commit`; consumers (messaging/consumers.py, escalations/consumers.py)
turn group events into client frames. Group names follow `conversation.<id>`; event types
`messages.created` → consumer handler `messages_created`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from accounts.sockets import frame_text
from core.outages import CHANNEL_LAYER, DATABASE, dependency_of, outage_report

logger = logging.getLogger("parley.realtime")

ESCALATIONS_GROUP = "escalations"

Event = tuple[str, dict[str, Any]]  # (group, event)
T = TypeVar("T")


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def messages_created_event(conversation_id: int, messages: Sequence[dict[str, Any]]) -> Event:
    """The messages one change added (a turn's customer message and reply, an operator's
    reply), as one event whose client frames are encoded here, once: every socket on the
    conversation wakes once per change and sends the text as it is, where an event per
    message, encoded per socket, cost the websocket process twice the channel-layer work and a
    JSON encoding per socket and message (docs/benchmarks.md, "Fan-out")."""
    return conversation_group(conversation_id), {
        "type": "messages.created",
        "messages": [
            {"seq": message["seq"], "frame": frame_text({"type": "message", "message": message})}
            for message in messages
        ],
    }


def conversation_status_event(
    conversation_id: int, status: str, escalation_id: int | None
) -> Event:
    return conversation_group(conversation_id), {
        "type": "conversation.status",
        "status": status,
        "escalation_id": escalation_id,
    }


def escalation_event(kind: str, escalation: dict[str, Any]) -> Event:
    """kind: "opened" | "assigned" | "resolved" (and "replied")."""
    return ESCALATIONS_GROUP, {"type": "escalation.event", "event": kind, "escalation": escalation}


def publish_on_commit(events: list[Event]) -> None:
    """Push events once the surrounding transaction commits (at once outside a transaction).

    Subscribers never see a message that was rolled back.
    """
    if events:
        transaction.on_commit(lambda: publish(events))


def publish(events: list[Event]) -> None:
    """Send now. A failed push is logged, never raised: the data is committed, and clients
    catch up through `after_seq` when they reconnect.

    With the in-memory layer the events go to the ASGI server's own loop (`async_to_sync`):
    that layer's queues belong to it. With channels_redis's pub/sub layer on one host, a sync
    caller — a WSGI request thread, a `sync_to_async` worker, a command; every service —
    publishes them itself: one pipelined round trip on a sync client, in the caller's order.
    Any other layer, or a caller on an event loop, hands them to one sender task on this
    process's background loop, which sends in hand-off order (`async_to_sync` from a WSGI
    thread would build a new event loop, thread and Redis connection for every push:
    docs/benchmarks.md measured ~1.7 ms of CPU per message).

    Why the caller sends rather than the background loop: the hand-off cost a message more
    than the round trip it saved — the loop's thread woke for every push and took the GIL
    from the request threads (~8 % of a worker's held-GIL time in the profile); sending from
    the request thread measured 1.16× the req/s and 0.82× the CPU per message
    (docs/benchmarks.md, "Fourth pass").
    """
    if not events:
        return
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(_send_all)(layer, events)
        elif not _on_event_loop() and (publisher := _pipeline_publisher(layer, sync=True)):
            publisher.pipeline(layer, [events]).execute()
        else:
            loop = background_loop()
            loop.call_soon_threadsafe(_push_enqueue, loop, layer, events)
    except Exception as exc:  # noqa: BLE001
        _push_failed(exc, len(events))


def _push_failed(exc: BaseException, count: int) -> None:
    """A push that did not go out: an unavailable Redis is an outage, logged once for all the
    pushes it fails (core.outages); anything else is logged with its traceback."""
    dependency = dependency_of(exc)
    if dependency is None:
        logger.error("websocket push failed for %d event(s)", count, exc_info=exc)
        return
    # The channel layer's Redis, whatever the client library called it.
    outage_report(CHANNEL_LAYER if dependency != DATABASE else dependency, exc)


def _on_event_loop() -> bool:
    """True on a thread running an event loop, which a blocking Redis call would stall."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# Pushes waiting for the sender. Bounded: while Redis does not answer each batch waits up to
# PUBLISH_TIMEOUT_SECONDS, and requests must not pile up memory behind it; past the bound a
# push is dropped and logged (clients catch up through `after_seq`, as for any failed push).
PUSH_QUEUE_MAX = 10_000
# Hand-offs the sender takes from its queue for one Redis pipeline: under load, the pushes of
# many requests share one round trip.
PUSH_BATCH_MAX = 256
_push_queue: asyncio.Queue[Any] | None = None
_push_queue_loop: asyncio.AbstractEventLoop | None = None


def _push_enqueue(loop: asyncio.AbstractEventLoop, layer: Any, events: list[Event]) -> None:
    """On the background loop: queue the events for the one sender task (started here, again
    after a fork, whose child has a new loop)."""
    global _push_queue, _push_queue_loop
    if _push_queue is None or _push_queue_loop is not loop:
        _push_queue, _push_queue_loop = asyncio.Queue(maxsize=PUSH_QUEUE_MAX), loop
        loop.create_task(_push_sender(_push_queue))
    try:
        _push_queue.put_nowait((layer, events))
    except asyncio.QueueFull:
        logger.error("websocket push dropped (sender backlog full) for %d event(s)", len(events))


async def _push_sender(queue: asyncio.Queue[Any]) -> None:
    """Send what was handed off, in order: everything waiting at once (up to PUSH_BATCH_MAX
    hand-offs) in one Redis pipeline when the layer allows it."""
    while True:
        batch = [await queue.get()]
        while len(batch) < PUSH_BATCH_MAX and not queue.empty():
            batch.append(queue.get_nowait())
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await _send_batch(batch)
        except Exception as exc:  # noqa: BLE001
            _push_failed(exc, sum(len(events) for _, events in batch))
        finally:
            for _ in batch:
                queue.task_done()


def publish_flush(timeout: float | None = None) -> None:
    """Wait until the pushes handed off so far were sent (or failed). Registered at exit, so a
    short-lived process (a management command) does not end with its pushes still queued."""
    loop, queue = _push_queue_loop, _push_queue
    if loop is None or queue is None or _loop is not loop or _loop_pid != os.getpid():
        return
    try:
        asyncio.run_coroutine_threadsafe(queue.join(), loop).result(
            PUBLISH_TIMEOUT_SECONDS if timeout is None else timeout
        )
    except Exception:  # noqa: BLE001
        logger.warning("websocket pushes still queued at exit")


atexit.register(publish_flush)


async def _send_all(layer: Any, events: list[Event]) -> None:
    for group, event in events:
        await layer.group_send(group, event)


async def _send_batch(batch: list[tuple[Any, list[Event]]]) -> None:
    """Send the hand-offs in order; consecutive ones for a pipelining layer in one round trip
    (one layer per process in practice, so the whole batch)."""
    index = 0
    while index < len(batch):
        layer = batch[index][0]
        publisher = _pipeline_publisher(layer)
        if publisher is None:
            await _send_all(layer, batch[index][1])
            index += 1
            continue
        run = []
        for same_layer, events in batch[index:]:
            if same_layer is not layer:
                break
            run.append(events)
        await publisher.pipeline(layer, run).execute()
        index += len(run)


class _PubSubPublisher:
    """`group_send` of channels_redis's pub/sub layer for many events in one Redis pipeline per
    shard: the same channel name (`<prefix>__group__<group>`), the layer's own serializer and
    its own choice of shard (channels_redis's consistent hash of that name over its hosts,
    CHANNEL_REDIS_URLS), so its subscribers -- on whichever host -- cannot tell the difference
    (tests/realtime/test_push_sender.py receives through the layer). `sync`: redis-py clients
    for callers on threads (thread-safe, their pools reopened after a fork); otherwise asyncio
    clients for the background loop."""

    def __init__(self, hosts: list[dict[str, Any]], prefix: str, *, sync: bool) -> None:
        self.shards: list[Any] = []
        for host in hosts:
            options = {k: v for k, v in host.items() if k != "address"}
            if sync:
                import redis

                # A request thread waits on a hung Redis as long as for its rate limit
                # (REDIS_SOCKET_TIMEOUT), then logs the push as failed; the layer's own 30 s
                # socket timeout is for its subscribers' blocking reads.
                timeout = settings.REDIS_SOCKET_TIMEOUT
                timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
                client: Any = redis.Redis.from_url(host["address"], **(options | timeouts))
            else:
                from redis import asyncio as aioredis

                client = aioredis.Redis.from_url(host["address"], **options)
            self.shards.append(client)
        self.redis = self.shards[0]
        self.prefix = prefix
        self.sync = sync

    def shard_of(self, channel: str) -> int:
        """The index of the shard channels_redis uses for `channel` (its own hash function)."""
        from channels_redis.utils import _consistent_hash

        return int(_consistent_hash(channel, len(self.shards)))

    def pipeline(self, layer: Any, hand_offs: list[list[Event]]) -> Any:
        """One pipeline per shard the events go to; each group lives on one shard, so every
        group's events keep their order."""
        pipelines: dict[int, Any] = {}
        for events in hand_offs:
            for group, event in events:
                channel = f"{self.prefix}__group__{group}"
                shard = self.shard_of(channel)
                if shard not in pipelines:
                    pipelines[shard] = self.shards[shard].pipeline(transaction=False)
                pipelines[shard].publish(channel, layer.serialize(event))
        if len(pipelines) == 1:
            return next(iter(pipelines.values()))
        return _Pipelines(list(pipelines.values()), sync=self.sync)


class _Pipelines:
    """Several shards' pipelines executed as one (shard after shard); a failed shard's error
    is raised after the others were sent, so a lost shard costs only its own pushes."""

    def __init__(self, pipelines: list[Any], *, sync: bool) -> None:
        self.pipelines = pipelines
        self.sync = sync

    def execute(self) -> Any:
        return self._execute_sync() if self.sync else self._execute_async()

    def _execute_sync(self) -> None:
        failure: BaseException | None = None
        for pipeline in self.pipelines:
            try:
                pipeline.execute()
            except Exception as exc:  # noqa: BLE001 - raised once every shard was tried
                failure = failure or exc
        if failure is not None:
            raise failure

    async def _execute_async(self) -> None:
        failure: BaseException | None = None
        for pipeline in self.pipelines:
            try:
                await pipeline.execute()
            except Exception as exc:  # noqa: BLE001 - raised once every shard was tried
                failure = failure or exc
        if failure is not None:
            raise failure


_publishers: dict[tuple[int, int, bool], _PubSubPublisher | None] = {}


def _pipeline_publisher(layer: Any, *, sync: bool = False) -> _PubSubPublisher | None:
    """The pipelining publisher for `layer` (sync: for threads; else for the background loop),
    or None to use the layer's own `group_send` (any layer but channels_redis's pub/sub with
    its hosts given as addresses)."""
    key = (id(layer), os.getpid(), sync)  # a forked child has its own loop, so its own client
    if key not in _publishers:
        from channels_redis.pubsub import RedisPubSubChannelLayer

        # Request threads may race here on first use: each builds its own and one assignment
        # wins (the loser's client is dropped). No placeholder is stored first: a thread that
        # read one would have sent its push down the other path.
        publisher = None
        config = getattr(layer, "_kwargs", {})
        hosts = config.get("hosts") or []
        if (
            isinstance(layer, RedisPubSubChannelLayer)
            and hosts
            and all(isinstance(host, dict) and "address" in host for host in hosts)
        ):
            publisher = _PubSubPublisher(hosts, config.get("prefix", "asgi"), sync=sync)
        _publishers[key] = publisher
    return _publishers[key]


# --- One event loop per process for async calls from sync code -------------------------------

PUBLISH_TIMEOUT_SECONDS = 5.0

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """This process's background event loop (a daemon thread), started on first use and
    started again in a forked child, which does not inherit the thread."""
    global _loop, _loop_pid
    if _loop is not None and _loop_pid == os.getpid():
        return _loop
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="parley-background-loop", daemon=True
            ).start()
            _loop, _loop_pid = loop, os.getpid()
    return _loop


def run_in_background(coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run `coro` on the background loop and wait for its result. For sync callers (WSGI
    threads, sync_to_async workers, management commands); never from the loop itself."""
    loop = background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_in_background called from the background loop itself")
    return asyncio.run_coroutine_threadsafe(
        _in_context(contextvars.copy_context(), coro), loop
    ).result(timeout)


async def _in_context(context: contextvars.Context, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` with the caller's context variables (the request id in log lines): a task on
    another thread's loop would otherwise start from that thread's empty context. The values
    are set in this task's own copy, so other tasks on the loop are unaffected."""
    for variable, value in context.items():
        variable.set(value)
    return await coro


def conversation_erased_event(conversation_id: int) -> Event:
    """The conversation's customer was erased: subscribers must be disconnected (the consumer
    closes with 4404, as for a conversation that does not exist)."""
    return conversation_group(conversation_id), {"type": "conversation.erased"}


# --- Sockets catch up after the channel layer's Redis returns ---------------------------------
# Redis pub/sub keeps nothing for a subscriber that is away: what was published while the
# websocket process's subscription was down -- during the outage, and in the second or so
# before channels-redis has subscribed again -- never reaches its sockets, and nothing would
# tell them. So when the outage ends in a process, its conversation sockets catch up from the
# database by seq, as a client resuming with `after_seq` does; their SeqWindow drops what they
# already sent. First a probe is sent through the layer and received back: the subscription is
# live again, so whatever is published from then on arrives, and whatever was committed before
# is in the database read that follows. No gap, no duplicate.

_catching_up: weakref.WeakSet[Any] = weakref.WeakSet()
_catch_up_loop: asyncio.AbstractEventLoop | None = None
PROBE_ATTEMPTS = 30
PROBE_TIMEOUT_SECONDS = 2.0


def socket_catch_up_register(socket: Any) -> None:
    """From a socket's event loop: call `await socket.catch_up()` after every outage of the
    channel layer that ends in this process while it is open (held weakly)."""
    global _catch_up_loop
    _catch_up_loop = asyncio.get_running_loop()
    _catching_up.add(socket)


def sockets_catch_up_schedule() -> None:
    """The channel layer's outage ended (core.outages' hook, from the watcher's thread): have
    this process's sockets catch up, on their event loop."""
    loop = _catch_up_loop
    if loop is None or loop.is_closed() or not _catching_up:
        return
    asyncio.run_coroutine_threadsafe(sockets_catch_up(), loop)


async def sockets_catch_up() -> int:
    """Once the layer delivers again, every registered socket catches up. Returns how many."""
    layer = get_channel_layer()
    if layer is None or not await channel_layer_delivers(layer):
        logger.error("channel layer still not delivering: sockets not caught up")
        return 0
    sockets = list(_catching_up)
    for socket in sockets:
        try:
            await socket.catch_up()
        except Exception:  # noqa: BLE001 - one socket's failure must not stop the others
            logger.exception("websocket catch-up failed")
    logger.info("%d websocket(s) caught up after the channel layer's outage", len(sockets))
    return len(sockets)


async def channel_layer_delivers(layer: Any) -> bool:
    """Whether an event sent through `layer` now comes back to a subscriber in this process
    (tried PROBE_ATTEMPTS times)."""
    for _attempt in range(PROBE_ATTEMPTS):
        group = f"parley.probe.{uuid.uuid4().hex}"
        channel = ""
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            await layer.group_send(group, {"type": "probe"})
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await layer.receive(channel)
            return True
        except Exception:  # noqa: BLE001 - not yet: try again shortly
            await asyncio.sleep(0.5)
        finally:
            if channel:
                with contextlib.suppress(Exception):
                    await layer.group_discard(group, channel)
    return False
