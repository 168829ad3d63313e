"""How many websockets one user holds across the deployment (`WS_MAX_SOCKETS_PER_USER`).

Every authenticated socket — conversation and escalation sockets alike, on any process of any
host — holds one *slot* of its user's while it is open. A slot is a lease: taken when the socket
authenticates, renewed while it stays open (every third of WS_SOCKET_LEASE_SECONDS), given back
the moment it closes. A socket whose process died without closing it (SIGKILL, a lost host)
stops renewing, and its slot lapses within WS_SOCKET_LEASE_SECONDS instead of holding the place
forever.

With REDIS_URL the slots are one sorted set per user in the shared Redis (member: the socket's
id, score: its lease's end, by Redis's own clock so hosts need not agree on the time), checked
and taken in one Lua script: two sockets of one user opening at once on two hosts cannot both
take the last place. Without it (the single-process embedded default) they live in this
process.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from django.conf import settings
from django.core.cache import caches
from django_redis.cache import RedisCache

logger = logging.getLogger("parley.realtime")

# KEYS[1]: the user's set. ARGV: socket id, the limit, the lease in milliseconds. Drops lapsed
# leases, then renews the socket's own or takes a new one if the user holds fewer than the
# limit. 1: held; 0: refused.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


class SocketSlots(Protocol):
    def take(self, *, user_id: int, socket_id: str, limit: int, lease_seconds: float) -> bool:
        """Take (or renew) `socket_id`'s slot; False when the user holds `limit` others."""

    def give_back(self, *, user_id: int, socket_id: str) -> None:
        """Free the slot at once (idempotent)."""

    def held(self, *, user_id: int) -> int:
        """How many live slots the user holds (for tests and operators)."""


class RedisSocketSlots:
    """Slots shared by every process on the deployment's Redis."""

    def __init__(self, cache: RedisCache) -> None:
        self.cache = cache

    def _key(self, user_id: int) -> str:
        return self.cache.make_key(f"ws-slots:{user_id}")

    def take(self, *, user_id: int, socket_id: str, limit: int, lease_seconds: float) -> bool:
        client = self.cache.client.get_client(write=True)
        script = client.register_script(_TAKE_SCRIPT)
        lease_ms = max(1, int(lease_seconds * 1000))
        return bool(script(keys=[self._key(user_id)], args=[socket_id, limit, lease_ms]))

    def give_back(self, *, user_id: int, socket_id: str) -> None:
        self.cache.client.get_client(write=True).zrem(self._key(user_id), socket_id)

    def held(self, *, user_id: int) -> int:
        client = self.cache.client.get_client(write=True)
        seconds, microseconds = client.time()
        now_ms = seconds * 1000 + microseconds // 1000
        return int(client.zcount(self._key(user_id), f"({now_ms}", "+inf"))


class LocalSocketSlots:
    """Slots of this process only: the embedded default, one process serving every socket."""

    def __init__(self) -> None:
        self._leases: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        leases = self._leases.setdefault(user_id, {})
        for socket_id in [s for s, until in leases.items() if until <= now]:
            del leases[socket_id]
        return leases

    def take(self, *, user_id: int, socket_id: str, limit: int, lease_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            leases = self._live(user_id, now)
            if socket_id not in leases and len(leases) >= limit:
                return False
            leases[socket_id] = now + lease_seconds
            return True

    def give_back(self, *, user_id: int, socket_id: str) -> None:
        with self._lock:
            leases = self._leases.get(user_id, {})
            leases.pop(socket_id, None)
            if not leases:
                self._leases.pop(user_id, None)

    def held(self, *, user_id: int) -> int:
        with self._lock:
            return len(self._live(user_id, time.monotonic()))

    def clear(self) -> None:
        with self._lock:
            self._leases.clear()


# This process's slots (used when the cache is not Redis); tests clear it between tests, as
# they clear the cache.
LOCAL_SLOTS = LocalSocketSlots()


def socket_slots() -> SocketSlots:
    """Redis's slots when the cache is the deployment's Redis, else this process's."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return RedisSocketSlots(cache)
    return LOCAL_SLOTS


def socket_slot_take(*, user_id: int, socket_id: str) -> bool:
    """Take or renew a socket's slot under the configured limit and lease."""
    return socket_slots().take(
        user_id=user_id,
        socket_id=socket_id,
        limit=settings.WS_MAX_SOCKETS_PER_USER,
        lease_seconds=settings.WS_SOCKET_LEASE_SECONDS,
    )


def socket_slot_give_back(*, user_id: int, socket_id: str) -> None:
    """Free a socket's slot. Never raises: a slot that could not be freed lapses with its lease."""
    try:
        socket_slots().give_back(user_id=user_id, socket_id=socket_id)
    except Exception:  # noqa: BLE001 - the lease expires anyway
        logger.exception("could not free a websocket slot of user %s", user_id)
