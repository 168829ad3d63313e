"""Rate limits on django-ratelimit's counters, shared by REST, websocket and admin login.

django-ratelimit's decorator has no async support and turns a hit into a 403, so entry points
call `rate_limit_enforce` instead; it raises RateLimited (429 + Retry-After) and records a
security event. Counters live in the default cache: Redis when REDIS_URL is set, so limits hold
across worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from accounts.usernames import canonical_username_or_none
from config.errors import RateLimited
from config.request_context import client_ip


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
