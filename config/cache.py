"""Django's Redis cache, keeping one `redis.Redis` client per connection pool.

Django's RedisCacheClient builds a new `redis.Redis` object for every cache call (each one
registering ~170 response callbacks); rate limiting makes two calls per request, so that was
~7 % of a message's CPU (docs/benchmarks.md). `redis.Redis` is thread-safe and only wraps the
pool, so one per pool behaves identically.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class PooledClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # private in stubs
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(  # type: ignore[attr-defined]
                connection_pool=pool
            )
        return client


class ParleyRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = PooledClientRedisCacheClient
