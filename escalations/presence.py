"""Who is connected to the operators' live channel, deployment-wide.

Each authenticated `/ws/escalations/` socket of an operator holds a *lease*: an entry that
expires `PRESENCE_LEASE_SECONDS` after it was last renewed. The socket renews it every
`PRESENCE_RENEW_SECONDS` and removes it when it closes. A process that dies without closing its
sockets (killed, its host lost) stops renewing, so its operators fall offline within one lease
— nobody stays online forever.

With REDIS_URL the leases are one Redis sorted set (member `<user id>:<socket id>`, score = the
lease's expiry as a unix time), shared by every process of the deployment: renewing is one
`ZADD`, leaving one `ZREM`, and "who is online" one `ZRANGEBYSCORE` from now. The embedded
default (one process, local-memory cache) keeps the same map in the local cache.

Whether an operator chose `away` is stored with their profile (escalations.OperatorProfile),
not here: a choice survives reconnects and restarts. Online = a live lease and not away
(escalations.operators).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core.ids import parse_id

# Module constants so tests (and operators) can shorten them.
PRESENCE_LEASE_SECONDS = 45.0
PRESENCE_RENEW_SECONDS = 15.0
_KEY = "presence:leases"
_local_lock = threading.Lock()


def _uses_redis() -> bool:
    return str(settings.CACHES["default"]["BACKEND"]).startswith("django_redis.")


def _redis() -> tuple[Any, str]:
    from django_redis import get_redis_connection

    # The cache's own key (prefix and version), so `cache.clear()` and several deployments
    # sharing a Redis database behave as for every other cache key.
    return get_redis_connection("default"), cache.make_key(_KEY)


def _member(user_id: int, socket_id: str) -> str:
    return f"{user_id}:{socket_id}"


def lease_renew(*, user_id: int, socket_id: str, now: float | None = None) -> bool:
    """Hold (or extend) the lease of one operator socket. True when the lease is new: the
    socket just connected, or its lease had lapsed (a process too busy to renew in time) and
    the operator is back — the caller then announces them and drains the queue."""
    now = time.time() if now is None else now
    expires = now + PRESENCE_LEASE_SECONDS
    member = _member(user_id, socket_id)
    if _uses_redis():
        client, key = _redis()
        pipeline = client.pipeline(transaction=False)
        # Lapsed entries (dead processes, this one too if it was late) go first, so the set
        # stays small and ZADD counts a lapsed lease as new.
        pipeline.zremrangebyscore(key, "-inf", now)
        pipeline.zadd(key, {member: expires})
        _, added = pipeline.execute()
        return bool(added)
    with _local_lock:
        leases = _local_leases(now)
        new = member not in leases
        leases[member] = expires
        cache.set(_KEY, leases, timeout=None)
        return new


def lease_release(*, user_id: int, socket_id: str) -> None:
    """The socket closed: give its lease up at once."""
    member = _member(user_id, socket_id)
    if _uses_redis():
        client, key = _redis()
        client.zrem(key, member)
        return
    with _local_lock:
        leases = _local_leases(time.time())
        leases.pop(member, None)
        cache.set(_KEY, leases, timeout=None)


def connected_user_ids(*, now: float | None = None) -> set[int]:
    """Users holding at least one live lease."""
    now = time.time() if now is None else now
    if _uses_redis():
        client, key = _redis()
        members = client.zrangebyscore(key, f"({now}", "+inf")
    else:
        with _local_lock:
            members = list(_local_leases(now))
    found = set()
    for member in members:
        text = member.decode() if isinstance(member, bytes) else str(member)
        user_id, _, _socket = text.partition(":")
        parsed = parse_id(user_id)
        if parsed is not None:
            found.add(parsed)
    return found


def _local_leases(now: float) -> dict[str, float]:
    leases = cache.get(_KEY) or {}
    return {member: expires for member, expires in leases.items() if expires > now}
