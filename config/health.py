"""Liveness and readiness checks, shared by the root probes (/health, /ready) and the API."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger("parley.health")

READY_TIMEOUT_SECONDS = 2


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    cache.set("parley:ready-probe", "1", timeout=10)
    if cache.get("parley:ready-probe") != "1":
        raise RuntimeError("cache did not return what was stored")


def _check_channel_layer() -> None:
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    if config["BACKEND"].startswith("channels.layers.InMemory"):
        return  # lives in this process: available whenever the process is
    import redis

    # Ping the layer's Redis directly: going through the layer from sync code would build a
    # fresh event loop and connection pool on every probe.
    for host in config["CONFIG"]["hosts"]:
        address = host["address"] if isinstance(host, dict) else host
        client = redis.Redis.from_url(
            address,
            socket_timeout=READY_TIMEOUT_SECONDS,
            socket_connect_timeout=READY_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()


CHECKS = {
    "database": _check_database,
    "cache": _check_cache,
    "channel_layer": _check_channel_layer,
}


def readiness() -> dict[str, str]:
    """Run every check; {name: "ok" | "unavailable"}. Failures are logged, not returned, so a
    probe never leaks connection strings or driver messages."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            logger.warning("readiness check failed: %s", name, exc_info=True)
            results[name] = "unavailable"
    return results
