"""Rate limits on django-ratelimit's counters, shared by REST, websocket and admin login.

django-ratelimit's decorator has no async support and turns a hit into a 403, so entry points
call `rate_limit_enforce` instead; it raises RateLimited (429 + Retry-After) and records a
security event. Counters live in the default cache: Redis when REDIS_URL is set, so limits hold
across worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import ALL, EXPIRATION_FUDGE, get_usage
from django_ratelimit.core import _get_window as ratelimit_window
from django_ratelimit.core import _make_cache_key as ratelimit_cache_key
from django_ratelimit.core import _split_rate as ratelimit_split_rate
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from accounts.usernames import canonical_username_or_none
from core.errors import PermissionDenied, RateLimited
from core.request_context import CallContext, client_ip


@dataclass(frozen=True)
class RateUsage:
    limit: int
    remaining: int
    reset_seconds: int

    def apply_headers(self, response: HttpResponse) -> None:
        response["RateLimit-Limit"] = str(self.limit)
        response["RateLimit-Remaining"] = str(self.remaining)
        response["RateLimit-Reset"] = str(self.reset_seconds)


def rate_limit_enforce(
    *,
    group: str,
    key: str,
    rate: str,
    request: HttpRequest | None = None,
    user: Any = None,
    path: str | None = None,
    ip: str | None = None,
) -> RateUsage | None:
    """Count one hit of `key` in `group`; raise RateLimited past `rate` (e.g. "10/m").

    Returns the usage for RateLimit-* headers, or None when rate limiting is disabled.
    """
    redis_cache = _redis_ratelimit_cache()
    if redis_cache is not None:
        usage: dict[str, Any] | None = _redis_usage(redis_cache, group=group, key=key, rate=rate)
    else:  # not on Redis (tests, development) or disabled: django-ratelimit itself
        usage = get_usage(
            request, group=group, key=lambda _group, _request: key, rate=rate, increment=True
        )
    if usage is None:
        return None
    reset = max(1, int(usage["time_left"]))
    if usage["should_limit"]:
        security_event_record(
            kind=SecurityEvent.Kind.RATE_LIMITED,
            request=request,
            user=user,
            path=path,
            ip=ip,
            detail={"group": group, "rate": rate},
        )
        raise RateLimited(limit=int(usage["limit"]), retry_after=reset)
    return RateUsage(
        limit=int(usage["limit"]),
        remaining=max(0, int(usage["limit"]) - int(usage["count"])),
        reset_seconds=reset,
    )


def user_rate_limit_enforce(
    *, group: str, rate: str, user: Any, context: CallContext | None = None
) -> RateUsage | None:
    """`rate_limit_enforce` with one budget per user (the limits of what an account does:
    messages, new conversations), from any door: `context` says where the call came from."""
    return rate_limit_enforce(
        group=group,
        key=str(user.pk),
        rate=rate,
        user=user,
        path=context.path if context else None,
        ip=context.ip if context else None,
    )


def _redis_ratelimit_cache() -> RedisCache | None:
    """The rate limits' cache when it is django-redis and limits are on, else None."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    return cache if isinstance(cache, RedisCache) else None


def _redis_usage(cache: RedisCache, *, group: str, key: str, rate: str) -> dict[str, Any]:
    """django-ratelimit's `get_usage(..., increment=True)` in one Redis round trip: a plain
    INCR, instead of `cache.add` then `cache.incr` (two round trips, ~14 % of a message's time
    in the profile, docs/benchmarks.md). Same cache key, window and expiry, so these counters
    and django-ratelimit's (the admin login's decorator path, `get_usage` readers) are one
    budget."""
    limit, period = ratelimit_split_rate(rate)
    window = ratelimit_window(key, period)
    # django-redis stores integers as plain Redis integers, so INCR counts the very value
    # `cache.add`/`cache.incr`/`cache.get` read and write under this key.
    cache_key = cache.client.make_key(ratelimit_cache_key(group, window, rate, key, ALL))
    client = cache.client.get_client(write=True)
    try:
        count = client.incr(cache_key)
        if count == 1:
            # The window's first hit gives the counter its expiry: one more round trip once
            # per window, where a pipelined EXPIRE cost every request ~20 µs of client CPU
            # (redis-py's pipeline machinery). NX keeps an expiry django-ratelimit's `add`
            # already set. Were this EXPIRE lost, the key would only outlive its window:
            # the window is part of the key, so no later budget ever reads it.
            client.expire(cache_key, period + EXPIRATION_FUDGE, nx=True)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # What django-redis raises for the same failure in cache.add.
        raise ConnectionInterrupted(connection=client) from exc
    return {
        "count": count,
        "limit": limit,
        "should_limit": count > limit,
        "time_left": window - int(time.time()),
    }


def login_rate_limit_enforce(*, request: HttpRequest, username: str) -> RateUsage | None:
    """One budget per client IP and one per account name, shared by the API and the admin
    login, so spreading a guessing attack over both doors gains nothing. The name's budget is
    keyed by its canonical form, the very value the sign-in looks up (accounts/usernames.py):
    every spelling that reaches an account spends that account's budget. A name with no
    canonical form can reach no account and spends only the IP budget. Returns the tighter
    usage."""
    ip = client_ip(request.META) or "unknown"
    usages = [
        rate_limit_enforce(
            group="login:ip", key=ip, rate=settings.RATE_LIMIT_LOGIN, request=request
        )
    ]
    canonical = canonical_username_or_none(username)
    if canonical is not None:
        usages.append(
            rate_limit_enforce(
                group="login:username",
                key=canonical,
                rate=settings.RATE_LIMIT_LOGIN,
                request=request,
            )
        )
    known = [usage for usage in usages if usage is not None]
    return min(known, key=lambda usage: usage.remaining) if known else None


def login_budget_check(*, request: HttpRequest, username: str) -> None:
    """Raise RateLimited (and record it) when the sign-in budget of the client IP or of the
    account, as `login_rate_limit_enforce` counts it, is already spent; spends nothing. For
    steps that count only failures (a second factor's code, a password confirmation such as
    `DELETE /auth/me`'s): a right answer within the limits is accepted and costs nothing, a
    wrong one is counted by `login_rate_limit_enforce` afterwards."""
    ip = client_ip(request.META) or "unknown"
    budgets = [("login:ip", ip)]
    canonical = canonical_username_or_none(username)
    if canonical is not None:
        budgets.append(("login:username", canonical))
    for group, key in budgets:
        usage = get_usage(
            request,
            group=group,
            key=lambda _group, _request, key=key: key,
            rate=settings.RATE_LIMIT_LOGIN,
            increment=False,
        )
        if usage is not None and usage["count"] >= usage["limit"]:
            security_event_record(
                kind=SecurityEvent.Kind.RATE_LIMITED,
                request=request,
                detail={"group": group, "rate": settings.RATE_LIMIT_LOGIN},
            )
            raise RateLimited(
                limit=int(usage["limit"]), retry_after=max(1, int(usage["time_left"]))
            )


@contextmanager
def login_failures_counted(
    *,
    request: HttpRequest,
    username: str,
    failures: tuple[type[Exception], ...] = (PermissionDenied,),
) -> Iterator[None]:
    """A step that asks again for a secret of the account (its password, a second factor's
    code) under the sign-in budgets, counting only wrong answers: the budgets are checked
    first (`login_budget_check`, 429 when spent); inside, a right answer costs nothing and a
    wrong one (`failures`) is counted by `login_rate_limit_enforce`, then raised."""
    login_budget_check(request=request, username=username)
    try:
        yield
    except failures:
        login_rate_limit_enforce(request=request, username=username)
        raise


def refresh_rate_limit_enforce(*, request: HttpRequest) -> RateUsage | None:
    ip = client_ip(request.META) or "unknown"
    return rate_limit_enforce(
        group="refresh:ip", key=ip, rate=settings.RATE_LIMIT_REFRESH, request=request
    )


def register_rate_limit_enforce(*, request: HttpRequest) -> RateUsage | None:
    ip = client_ip(request.META) or "unknown"
    return rate_limit_enforce(
        group="register:ip", key=ip, rate=settings.RATE_LIMIT_REGISTER, request=request
    )
