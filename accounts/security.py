"""Security events (docs/api.md): one JSON log line each, and a stored row superusers browse.

Its own module, below `accounts.auth` and `accounts.services`, so every layer that refuses a
request (auth, rate limits, permissions, sockets, the admin login) records through one function
without an import cycle.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import SecurityEvent, User
from config.request_context import CallContext, current_request_id

security_logger = logging.getLogger("parley.security")

# --- Security events ------------------------------------------------------------------------

_EVENT_LEVELS = {
    SecurityEvent.Kind.IDOR_ATTEMPT: logging.CRITICAL,
    SecurityEvent.Kind.TOKEN_REVOKED: logging.INFO,
}
# Kinds an anonymous flood can produce. Each is always logged, but only this many rows per
# client IP and minute are stored, so a scanner cannot turn failed requests into DB growth.
_THROTTLED_KINDS = {
    SecurityEvent.Kind.AUTH_FAILED,
    SecurityEvent.Kind.API_KEY_FAILED,
    SecurityEvent.Kind.LOGIN_FAILED,
    SecurityEvent.Kind.RATE_LIMITED,
}
STORED_EVENTS_PER_IP_MINUTE = 60


def security_event_record(
    *,
    kind: str,
    request: HttpRequest | None = None,
    context: CallContext | None = None,
    user: User | None = None,
    path: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Log a security event as a JSON line and store it for the admin. Never raises: a failure
    to record must not turn a refused request into a 500."""
    try:
        if request is not None:
            context = CallContext.from_request(request)
        if context is not None:
            path = path or context.path
            ip = ip or context.ip
        level = _EVENT_LEVELS.get(kind, logging.WARNING)  # type: ignore[call-overload]
        user_id = user.pk if user is not None else None
        request_id = current_request_id() or ""
        security_logger.log(
            level,
            "security event: %s",
            kind,
            extra={
                "event": str(kind),
                "user_id": user_id,
                "client_ip": ip,
                "path": path,
                "detail": detail or {},
            },
        )
        if kind in _THROTTLED_KINDS and not _event_storage_allowed(str(kind), ip):
            return
        SecurityEvent.objects.create(
            kind=kind,
            level=logging.getLevelName(level),
            user_id=user_id,
            ip=ip,
            path=(path or "")[:512],
            request_id=request_id[:128],
            detail=detail or {},
        )
    except Exception:  # noqa: BLE001 - recording must never fail the request
        security_logger.exception("could not record security event %s", kind)


def _event_storage_allowed(kind: str, ip: str | None) -> bool:
    minute = int(timezone.now().timestamp() // 60)
    key = f"secevt:{kind}:{ip or '-'}:{minute}"
    if cache.add(key, 1, timeout=120):
        return True
    try:
        return cache.incr(key) <= STORED_EVENTS_PER_IP_MINUTE
    except ValueError:
        return True
