"""Websocket scenarios of `make bench`: live push latency (4) and held idle connections (5).

Clients speak the websocket protocol (docs/api.md): connect to /ws/conversations/<id>/ with an
allowed Origin, send
`{"type": "auth", "token": ...}` first, wait for `auth.ok`, then read `message` events. REST
messages go through the HTTP port (keep-alive, httpx) in the same event loop, so the REST
response time and each client's receipt time are read off one clock.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

ORIGIN = "http://127.0.0.1"


@dataclass
class Client:
    """One subscribed websocket; records when each agent message id arrived."""

    url: str
    token: str
    received: dict[int, float] = field(default_factory=dict)
    ws: Any = None
    task: asyncio.Task[None] | None = None
    closed_code: int | None = None
    failure: str | None = None

    async def connect(self, open_timeout: float = 15.0) -> None:
        self.ws = await asyncio.wait_for(
            websockets.connect(
                self.url,
                origin=ORIGIN,
                open_timeout=open_timeout,
                max_size=2**20,
                ping_interval=None,
            ),
            open_timeout,
        )
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), open_timeout))
            if frame.get("type") == "auth.ok":
                break
            if frame.get("type") == "error":
                raise RuntimeError(f"auth refused: {frame}")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame.get("type") == "message":
                    message = frame.get("message") or {}
                    if message.get("role") == "agent":
                        self.received.setdefault(int(message["id"]), now)
        except websockets.ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else None
        except Exception as exc:  # noqa: BLE001 - recorded, reported as a failure
            self.failure = repr(exc)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()


async def _connect_all(clients: list[Client], concurrency: int = 50) -> list[str]:
    semaphore = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(client: Client) -> None:
        async with semaphore:
            try:
                await client.connect()
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    await asyncio.gather(*(one(c) for c in clients))
    return errors


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "min_ms": None}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)

    return {
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1], 2),
        "min_ms": round(ordered[0], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def process_request(
    customer: dict[str, Any], message: str, *, new_conversation: bool = False
) -> dict[str, Any]:
    """An httpx client's `post(**...)` arguments for POST /messages/process as a seeded
    customer (bench/seed.py): into their own conversation, or a new one."""
    return {
        "url": "/api/v1/messages/process",
        "json": {
            "message": message,
            "customer_id": customer["id"],
            "conversation_id": None if new_conversation else customer["conversation_id"],
        },
        "headers": {"Authorization": f"Bearer {customer['token']}"},
    }


async def _send(
    http: httpx.AsyncClient, customer: dict[str, Any], message: str
) -> tuple[int, float, float]:
    """POST /messages/process; (agent message id, send time, response time)."""
    sent = time.perf_counter()
    response = await http.post(**process_request(customer, message))
    done = time.perf_counter()
    if response.status_code != 200:
        raise RuntimeError(f"process → {response.status_code}: {response.text[:200]}")
    return int(response.json()["message_id"]), sent, done


async def push_latency(
    *,
    http_url: str,
    ws_url: str,
    customers: list[dict[str, Any]],
    message: str,
    clients: int,
    messages: int,
    senders: int,
    fanout: bool,
) -> dict[str, Any]:
    """Scenario 4. fanout=False: `clients` customers each subscribed to their own conversation,
    `messages` REST sends spread over them by `senders` concurrent senders; each reply reaches
    one client. fanout=True: `clients` sockets on the first customer's conversation and
    `messages` sequential sends; each reply reaches every socket."""
    targets = [customers[0]] * clients if fanout else customers[:clients]
    subs = [
        Client(f"{ws_url}/ws/conversations/{c['conversation_id']}/", c["token"]) for c in targets
    ]
    errors = await _connect_all(subs)
    connected = [c for c in subs if c.alive]
    if errors:
        await asyncio.gather(*(c.close() for c in connected))
        return {"error": f"{len(errors)} of {clients} clients failed to connect: {errors[:3]}"}
    await asyncio.sleep(0.5)
    sent_at: dict[int, tuple[float, float, int]] = {}  # message id → (sent, responded, target)
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(
        base_url=http_url, limits=limits, timeout=30, headers={"Host": "127.0.0.1"}
    ) as http:
        if fanout:
            for _ in range(messages):
                mid, sent, done = await _send(http, customers[0], message)
                sent_at[mid] = (sent, done, -1)
                await asyncio.sleep(0.02)
        else:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(messages):
                queue.put_nowait(i % len(connected))

            async def sender() -> None:
                while not queue.empty():
                    index = queue.get_nowait()
                    mid, sent, done = await _send(http, targets[index], message)
                    sent_at[mid] = (sent, done, index)

            await asyncio.gather(*(sender() for _ in range(senders)))
    await asyncio.sleep(2.0)  # stragglers
    from_response: list[float] = []
    from_send: list[float] = []
    missing = 0
    for mid, (sent, done, index) in sent_at.items():
        receivers = subs if index < 0 else [subs[index]]
        for client in receivers:
            at = client.received.get(mid)
            if at is None:
                missing += 1
                continue
            from_response.append(1000 * (at - done))
            from_send.append(1000 * (at - sent))
    await asyncio.gather(*(c.close() for c in subs))
    expected = len(sent_at) * (len(subs) if fanout else 1)
    return {
        "clients": clients,
        "messages": len(sent_at),
        "deliveries_expected": expected,
        "deliveries_missing": missing,
        "after_response": _percentiles(from_response),
        "after_send": _percentiles(from_send),
        "arrived_before_response": sum(1 for v in from_response if v < 0),
    }


async def held_connections(
    *,
    http_url: str,
    ws_url: str,
    customers: list[dict[str, Any]],
    message: str,
    count: int,
    conversations: int,
    idle_seconds: float,
    rss: Any,
) -> dict[str, Any]:
    """Scenario 5: `count` authenticated sockets over `conversations` conversations, idle for
    `idle_seconds` (longer than redis-py's 5 s read timeout that NOTES warns about), then one
    REST message per conversation must reach every socket of it."""
    targets = customers[:conversations]
    rss_before = rss()
    subs = [
        Client(
            f"{ws_url}/ws/conversations/{targets[i % conversations]['conversation_id']}/",
            targets[i % conversations]["token"],
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    errors = await _connect_all(subs, concurrency=100)
    connect_seconds = time.perf_counter() - started
    rss_connected = rss()
    await asyncio.sleep(idle_seconds)
    alive_after_idle = sum(1 for c in subs if c.alive)
    rss_idle = rss()
    mids: dict[int, int] = {}
    async with httpx.AsyncClient(
        base_url=http_url, timeout=30, headers={"Host": "127.0.0.1"}
    ) as http:
        for index, customer in enumerate(targets):
            mid, _sent, _done = await _send(http, customer, message)
            mids[index] = mid
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        delivered = sum(1 for i, c in enumerate(subs) if mids[i % conversations] in c.received)
        if delivered == len(subs):
            break
        await asyncio.sleep(0.2)
    delivered = sum(1 for i, c in enumerate(subs) if mids[i % conversations] in c.received)
    await asyncio.gather(*(c.close() for c in subs))
    connected = count - len(errors)
    return {
        "target": count,
        "connected": connected,
        "connect_errors": errors[:3],
        "connect_seconds": round(connect_seconds, 2),
        "idle_seconds": idle_seconds,
        "alive_after_idle": alive_after_idle,
        "delivered_after_idle": delivered,
        "rss_mib": {
            "before": round(rss_before, 1),
            "connected": round(rss_connected, 1),
            "after_idle": round(rss_idle, 1),
        },
        "kib_per_connection": round(1024 * (rss_idle - rss_before) / connected, 1)
        if connected
        else None,
    }
