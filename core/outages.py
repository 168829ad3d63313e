"""Outages of what every Parley process depends on -- the database, the cache, the channel
layer's Redis -- noticed, logged once, and watched until they end.

A lost PostgreSQL or Redis (a restart, a failover, a minor upgrade) is an outage of seconds,
not a bug: requests answer 503 with Retry-After meanwhile, sockets get an `error` frame or a
1013 close, the worker waits. The log says so once when the outage starts and once when it
ends ("database unavailable (OperationalError) ..." then "database available again after
4.1 s; 37 failures meanwhile"), never once per request. Each process notices on its own.

`outage_report(dependency, exc)` is called wherever such an error is caught. The first report
starts the outage: one ERROR line, and a watcher thread that runs the dependency's check (the
same as `/ready`'s) with backoff until it passes; then one line for the recovery, and for the
database the connection pool drops the connections the outage killed, so the next requests
do not meet them; other layers add their own hooks (`outage_recovery_hook_register`: the
websocket tier catches its sockets up after the channel layer's Redis returns). `/ready` also
reports what it sees succeed (`outage_recovered`), and the worker can wait for the end
(`outage_wait`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger("parley.outages")

DATABASE = "database"
CACHE = "cache"
CHANNEL_LAYER = "channel_layer"

# Seconds a client is told to wait (Retry-After) while a dependency is unavailable.
RETRY_AFTER_SECONDS = 5
# How long one check may wait on a dependency that does not answer.
CHECK_TIMEOUT_SECONDS = 2
# The watcher's pauses between checks: from the first, doubling up to the last. Short enough
# that a restart of a few seconds is seen to end within about a second of its end.
WATCH_BACKOFF_FIRST = 0.2
WATCH_BACKOFF_MAX = 1.0


# --- What is an outage --------------------------------------------------------------------------


def _redis_errors() -> tuple[type[Exception], ...]:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed with channels-redis
        return ()
    return (RedisConnectionError, RedisTimeoutError)


def _cache_errors() -> tuple[type[Exception], ...]:
    try:
        from django_redis.exceptions import ConnectionInterrupted
    except ImportError:  # pragma: no cover - django-redis is a requirement
        return ()
    return (ConnectionInterrupted,)


def outage_errors() -> tuple[type[Exception], ...]:
    """Every exception class `dependency_of` names a dependency for."""
    return (OperationalError, InterfaceError, *_cache_errors(), *_redis_errors())


def dependency_of(exc: BaseException) -> str | None:
    """The dependency `exc` says is unavailable, or None when it is not an outage but a bug.

    Database: Django's OperationalError (connection refused or lost, the pool's timeout, a
    lock wait broken off) and InterfaceError (a connection already closed). Cache: django-redis'
    ConnectionInterrupted. Redis' own connection and timeout errors come from the channel
    layer (the cache wraps its own)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return DATABASE
    if isinstance(exc, _cache_errors()):
        return CACHE
    if isinstance(exc, _redis_errors()):
        return CHANNEL_LAYER
    return None


# --- The checks (shared with /ready) ------------------------------------------------------------


def check_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    cache.set("parley:ready-probe", "1", timeout=10)
    if cache.get("parley:ready-probe") != "1":
        raise RuntimeError("cache did not return what was stored")


class CheckFailed(RuntimeError):
    """A check's failure with a description safe to show a probe (`/ready`): which part of a
    dependency is away, by address without credentials, never the driver's message."""


def redis_address(url: str) -> str:
    """A Redis URL as an operator may see it anywhere: scheme, host, port and database, without
    user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_channel_layer() -> None:
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    if config["BACKEND"].startswith("channels.layers.InMemory"):
        return  # lives in this process: available whenever the process is
    import redis

    # Ping the layer's Redis directly: going through the layer from sync code would build a
    # fresh event loop and connection pool on every check. Every shard is asked, so a probe
    # names each one that is away (numbered from 1 in CHANNEL_REDIS_URLS' order).
    lost = []
    for number, host in enumerate(config["CONFIG"]["hosts"], start=1):
        address = host["address"] if isinstance(host, dict) else host
        client = redis.Redis.from_url(
            address,
            socket_timeout=CHECK_TIMEOUT_SECONDS,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        except _redis_errors() as exc:
            lost.append((number, address, exc))
        finally:
            client.close()
    if lost:
        described = ", ".join(
            f"channel layer shard {number} ({redis_address(address)}) unreachable"
            for number, address, _ in lost
        )
        raise CheckFailed(described) from lost[0][2]


CHECKS: dict[str, Callable[[], None]] = {
    DATABASE: check_database,
    CACHE: check_cache,
    CHANNEL_LAYER: check_channel_layer,
}


def _database_connections_reset() -> None:
    """After a database outage: drop the pool's connections the outage killed (each would
    fail one request otherwise). A no-op without a pool."""
    pool = getattr(connections[DEFAULT_DB_ALIAS], "pool", None)
    if pool is not None:
        pool.check()


# What runs in this process when an outage ends (in the watcher's thread), by dependency.
_recovery_hooks: dict[str, list[Callable[[], None]]] = {DATABASE: [_database_connections_reset]}


def outage_recovery_hook_register(dependency: str, hook: Callable[[], None]) -> None:
    """Run `hook` whenever an outage of `dependency` ends in this process (from the thread that
    saw it end: a hook that needs an event loop schedules its work there). Registering a hook
    again changes nothing."""
    hooks = _recovery_hooks.setdefault(dependency, [])
    if hook not in hooks:
        hooks.append(hook)


# --- The outages of this process ----------------------------------------------------------------


@dataclass
class Outage:
    dependency: str
    started: float  # time.monotonic()
    failures: int = 1


_lock = threading.Lock()
_outages: dict[str, Outage] = {}
_ended: dict[str, threading.Event] = {}


def outage_report(dependency: str, exc: BaseException | None = None) -> bool:
    """`dependency` just failed. The first failure of an outage logs it and starts the
    watcher; later ones are only counted. Returns True when this report started the outage."""
    with _lock:
        current = _outages.get(dependency)
        if current is not None:
            current.failures += 1
            return False
        outage = _outages[dependency] = Outage(dependency=dependency, started=time.monotonic())
        _ended[dependency] = threading.Event()
    logger.error(
        "%s unavailable (%s): requests get 503, waiting for it to return",
        dependency,
        type(exc).__name__ if exc is not None else "check failed",
        extra={
            "dependency": dependency,
            "outage": "started",
            "cause": _cause(exc),
            "pid": os.getpid(),
        },
    )
    _watch(outage)
    return True


def outage_met(exc: BaseException) -> str | None:
    """A worker's thread met `exc`. When it says a dependency is unavailable: report the outage
    and drop this thread's database connections (they died with it: never reuse one), and
    return the dependency; None when `exc` is a bug (the caller re-raises it)."""
    dependency = dependency_of(exc)
    if dependency is not None:
        outage_report(dependency, exc)
        connections.close_all()
    return dependency


def _cause(exc: BaseException | None) -> str:
    """The driver's first line, for operators (the log, never a response)."""
    if exc is None:
        return ""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def outage_recovered(dependency: str, *, outage: Outage | None = None) -> bool:
    """`dependency` answered. Ends its outage (logged once) if there is one -- only `outage`,
    when given (a watcher ends the outage it was started for, never a later one); True if so."""
    with _lock:
        current = _outages.get(dependency)
        if current is None or (outage is not None and current is not outage):
            return False
        del _outages[dependency]
        ended = _ended.pop(dependency, None)
    for hook in list(_recovery_hooks.get(dependency, ())):
        try:
            hook()
        except Exception:  # noqa: BLE001 - a failed clean-up must not hide the recovery
            logger.warning("clean-up after the %s outage failed", dependency, exc_info=True)
    logger.warning(
        "%s available again after %.1f s; %d failure(s) meanwhile",
        dependency,
        time.monotonic() - current.started,
        current.failures,
        extra={"dependency": dependency, "outage": "ended", "pid": os.getpid()},
    )
    if ended is not None:
        ended.set()
    return True


def outages_current() -> dict[str, Outage]:
    """The outages this process sees now, by dependency."""
    with _lock:
        return dict(_outages)


def outage_wait(dependency: str, *, timeout: float | None = None) -> bool:
    """Block until `dependency`'s outage ends (at once if there is none); False on timeout.
    Waits in short slices, so a signal handler that raises (SIGTERM) gets through."""
    with _lock:
        ended = _ended.get(dependency)
    if ended is None:
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    while not ended.wait(0.2):
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


def outages_reset() -> None:
    """Forget every outage (tests); their watchers stop at their next check."""
    with _lock:
        ended = list(_ended.values())
        _outages.clear()
        _ended.clear()
    for event in ended:
        event.set()


def _watch(outage: Outage) -> None:
    check = CHECKS.get(outage.dependency)
    if check is None:
        return
    thread = threading.Thread(
        target=_watch_until_back,
        args=(outage, check),
        name=f"parley-outage-{outage.dependency}",
        daemon=True,
    )
    thread.start()


def _watch_until_back(outage: Outage, check: Callable[[], None]) -> None:
    dependency = outage.dependency
    pause = WATCH_BACKOFF_FIRST
    while True:
        with _lock:
            if _outages.get(dependency) is not outage:
                return  # ended by someone else's success (or reset); a later one has its own
        time.sleep(pause)
        pause = min(pause * 2, WATCH_BACKOFF_MAX)
        try:
            check()
        except Exception:  # noqa: BLE001, S112 - still down: check again after the pause
            continue
        finally:
            # This thread's own connection: never kept (it may be the dead one next time).
            connections.close_all()
        outage_recovered(dependency, outage=outage)
        return
